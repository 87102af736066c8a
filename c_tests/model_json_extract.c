/* model_json_extract.c — extracting structured data with SmolLM2-135M-Instruct through the C API
 * (issue 15): a JSON schema becomes a grammar (q_grammar_from_json_schema), the model answers a
 * chat prompt under it with q_generate_ex (greedy, then three seeded samplers), and every answer
 * is parsed by an independent JSON parser (support/qjson.h) and checked against the schema's
 * required keys and types. Also: a GBNF grammar of choices, q_grammar_matches, and grammar and
 * schema errors naming their line/column or keyword. */
#include <stdlib.h>

#include "qorus.h"
#include "support/qjson.h"
#include "support/qmodel.h"
#include "support/qtest.h"

static const char *schema =
    "{\"type\": \"object\", \"properties\": {"
    "\"name\": {\"type\": \"string\", \"maxLength\": 40},"
    "\"age\": {\"type\": \"integer\"},"
    "\"city\": {\"type\": \"string\", \"maxLength\": 40},"
    "\"employed\": {\"type\": \"boolean\"}},"
    "\"required\": [\"name\", \"age\", \"city\"]}";

static const char *chat =
    "<|im_start|>user\nExtract the person as JSON: Maria Lopez is 34 years old, lives in Madrid and works as a "
    "teacher.<|im_end|>\n<|im_start|>assistant\n";

int main(void) {
    const char *path = qmodel_path("QORUS_TEST_MODEL");
    if (!path) return 1;
    q_context ctx;
    q_llama_model m;
    QCHECK_CODE(qmodel_open(&ctx, &m, path, 512, 64), Q_OK);
    q_tokenizer tok;
    QCHECK_CODE(q_tokenizer_load(&tok, path), Q_OK);
    uint32_t prompt[256], n_prompt = 0;
    QCHECK_CODE(q_tokenizer_encode(&tok, chat, prompt, &n_prompt, 256, false, false), Q_OK);

    q_grammar *g = NULL;
    QCHECK_CODE(q_grammar_from_json_schema(schema, &g), Q_OK);
    char text[4096];
    uint32_t out[200];
    for (int run = 0; run < 4; run++) {
        q_sampler *s = NULL;
        q_sampler_params sp = q_sampler_default_params();
        sp.seed = (uint64_t)run;
        if (run > 0) QCHECK_CODE(q_sampler_new(&sp, m.config.vocab_size, &s), Q_OK);
        q_generate_options o;
        memset(&o, 0, sizeof o);
        o.grammar = g;
        o.sampler = s;
        o.text_out = text;
        o.text_capacity = sizeof text;
        q_generation_state st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, out, 200);
        q_generate_result r;
        r.code = -1;
        q_error_code rc = q_generate_ex(&st, &o, &r);
        QCHECK(rc == Q_OK, "q_generate_ex -> %d %s", rc, rc == Q_OK ? "" : q_last_error());
        int parsed = qjson_parse(text);
        const char *name = parsed ? qjson_get(text, "name") : NULL;
        const char *age = parsed ? qjson_get(text, "age") : NULL;
        const char *city = parsed ? qjson_get(text, "city") : NULL;
        const char *emp = parsed ? qjson_get(text, "employed") : NULL;
        QCHECK(r.stop_reason == Q_STOP_EOS && parsed, "%s: ends at EOS (%d) and parses as JSON: %s",
               run == 0 ? "greedy" : "sampled", r.stop_reason, text);
        QCHECK(name && *name == '"' && age && (*age == '-' || isdigit((unsigned char)*age)) && city &&
                   *city == '"' && (!emp || !strncmp(emp, "true", 4) || !strncmp(emp, "false", 5)),
               "required keys with their types (name string, age integer, city string)");
        if (run == 0) {
            int madrid = city && strncmp(city, "\"Madrid\"", 8) == 0;
            int age34 = age && strncmp(age, "34", 2) == 0;
            printf("     greedy extraction: city Madrid %s, age 34 %s\n", madrid ? "yes" : "no", age34 ? "yes" : "no");
        }
        q_sampler_free(s);
    }
    /* the same schema per sequence in q_generate_batch_ex: greedy and a seeded sampler */
    {
        q_context bctx[2];
        q_generation_state states[2];
        uint32_t bout[2][200], tokens_out[2 * 200], counts[2];
        char texts[2][4096];
        q_generate_options bo[2];
        q_generate_result br[2];
        q_sampler_params sp = q_sampler_default_params();
        sp.seed = 42;
        for (int i = 0; i < 2; i++) {
            memset(&bctx[i], 0, sizeof bctx[i]);
            QCHECK_CODE(q_alloc_arena(&bctx[i], 8 << 20), Q_OK);
            QCHECK_CODE(q_alloc_kv_cache(&bctx[i], qmodel_kv_bytes(&m)), Q_OK);
            states[i] = qmodel_state(&bctx[i], &m, &tok, prompt, n_prompt, bout[i], 200);
            memset(&bo[i], 0, sizeof bo[i]);
            bo[i].grammar = g;
            bo[i].text_out = texts[i];
            bo[i].text_capacity = sizeof texts[i];
        }
        QCHECK_CODE(q_sampler_new(&sp, m.config.vocab_size, &bo[1].sampler), Q_OK);
        q_batch_generation_state batch = {states, 2, NULL};
        QCHECK_CODE(q_generate_batch_ex(&batch, bo, tokens_out, counts, br), Q_OK);
        for (int i = 0; i < 2; i++)
            QCHECK(br[i].stop_reason == Q_STOP_EOS && qjson_parse(texts[i]) && qjson_get(texts[i], "age") != NULL,
                   "batch sequence %d under the schema parses: %s", i, texts[i]);
        q_sampler_free(bo[1].sampler);
        for (int i = 0; i < 2; i++) q_free_memory(&bctx[i]);
    }

    bool ok = false;
    QCHECK_CODE(q_grammar_matches(g, "{\"name\": \"A\", \"age\": 1, \"city\": \"B\"}", &ok), Q_OK);
    QCHECK(ok, "the schema grammar matches a valid record");
    QCHECK_CODE(q_grammar_matches(g, "{\"name\": \"A\", \"city\": \"B\"}", &ok), Q_OK);
    QCHECK(!ok, "and refuses one without the required age");
    q_grammar_free(g);

    /* a GBNF list of choices */
    static const char *yn =
        "<|im_start|>user\nIs Paris in France? Answer yes or no.<|im_end|>\n<|im_start|>assistant\n";
    QCHECK_CODE(q_tokenizer_encode(&tok, yn, prompt, &n_prompt, 256, false, false), Q_OK);
    QCHECK_CODE(q_grammar_new("root ::= (\"yes\" | \"no\") \".\"?\n", &g), Q_OK);
    q_generate_options o;
    memset(&o, 0, sizeof o);
    o.grammar = g;
    o.text_out = text;
    o.text_capacity = sizeof text;
    q_generation_state st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, out, 20);
    q_generate_result r;
    memset(&r, 0, sizeof r);
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_OK);
    QCHECK(r.stop_reason == Q_STOP_EOS && (!strcmp(text, "yes") || !strcmp(text, "no") || !strcmp(text, "yes.") ||
                                           !strcmp(text, "no.")),
           "choice grammar: \"%s\"", text);
    q_grammar_free(g);

    /* errors */
    g = (q_grammar *)0x1;
    QCHECK_CODE(q_grammar_new("root ::= \"a\"\nfoo ::= [a-\n", &g), Q_ERR_INVALID_ARG);
    QCHECK(strstr(q_last_error(), "line 2, column 9") != NULL && g == (q_grammar *)0x1, "names the place: %s",
           q_last_error());
    QCHECK_CODE(q_grammar_new("root ::= value\n", &g), Q_ERR_INVALID_ARG);
    QCHECK(strstr(q_last_error(), "undefined rule value") != NULL, "%s", q_last_error());
    QCHECK_CODE(q_grammar_from_json_schema("{\"type\": \"string\", \"pattern\": \"x\"}", &g), Q_ERR_INVALID_ARG);
    QCHECK(strstr(q_last_error(), "pattern") != NULL, "%s", q_last_error());
    QCHECK_CODE(q_grammar_from_json_schema("{\"type\": ", &g), Q_ERR_INVALID_ARG);
    QCHECK(strstr(q_last_error(), "line 1") != NULL, "%s", q_last_error());
    QCHECK_CODE(q_grammar_new(NULL, &g), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_grammar_new("root ::= \"a\"\n", NULL), Q_ERR_INVALID_ARG);
    size_t len = 0;
    QCHECK_CODE(q_json_schema_to_gbnf("{\"type\": \"boolean\"}", NULL, 0, &len), Q_ERR_ARENA_OOM);
    char *buf = malloc(len + 1);
    QCHECK_CODE(q_json_schema_to_gbnf("{\"type\": \"boolean\"}", buf, len + 1, &len), Q_OK);
    QCHECK(strncmp(buf, "root ::= boolean", 16) == 0, "q_json_schema_to_gbnf: %.40s...", buf);
    free(buf);
    q_grammar_free(NULL);

    q_tokenizer_free(&tok);
    q_free_memory(&ctx);
    return qtest_summary("model_json_extract");
}
