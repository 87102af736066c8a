//! Constrained generation on SmolLM2-135M-Instruct (issue 15): every output of a generation under
//! a grammar (JSON, arithmetic, a list of choices) or a JSON schema parses, greedy and sampled;
//! outputs are checked by independent parsers (serde_json, a small expression parser), not by the
//! grammar engine itself. Also prints the cost of a constrained decode step against an
//! unconstrained one (figures on a shared machine are rough).
//!
//! Run with `cargo test --release --test grammar_generation -- --nocapture`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use qorus::chat::{render, Message, CHATML};
use qorus::engine::Session;
use qorus::format::{build_model, map_file};
use qorus::generate::{generate_ex, GenOptions, GenParams, StopReason};
use qorus::grammar::json_schema::schema_to_gbnf;
use qorus::grammar::{Grammar, GrammarConstraint, VocabIndex};
use qorus::sampling::{ChainParams, SamplerChain, SamplingParams};
use qorus::tokenizer::Tokenizer;

struct Fixture {
    session: Session,
    tok: Tokenizer,
    vocab: Arc<VocabIndex>,
}

fn fixture() -> Fixture {
    let path = common::model("q4_1");
    let file = Arc::new(map_file(&path, false).unwrap());
    let model = build_model(&file, None).unwrap();
    let tok = Tokenizer::from_gguf(file.gguf.as_ref().unwrap()).unwrap();
    let vocab = Arc::new(VocabIndex::from_tokenizer(&tok));
    Fixture {
        session: Session::new(model, 1024).unwrap(),
        tok,
        vocab,
    }
}

struct Run {
    masks: usize,
    text: String,
    stop: StopReason,
    n: usize,
    secs_per_token: f64,
}

fn run(f: &mut Fixture, user: &str, grammar: Option<&Arc<Grammar>>, seed: Option<u64>) -> Run {
    let prompt_text = render(
        f.tok.chat_template().unwrap_or(CHATML),
        &[Message::new("user", user)],
        true,
        "",
        "",
    )
    .unwrap();
    let prompt = f.tok.encode(prompt_text.as_bytes(), false, true);
    let mut chain = SamplerChain::new(
        match seed {
            Some(s) => ChainParams {
                seed: s,
                ..ChainParams::default()
            },
            None => ChainParams::GREEDY,
        },
        f.tok.vocab_size(),
    )
    .unwrap();
    let mut constraint =
        grammar.map(|g| GrammarConstraint::new(g.clone(), f.vocab.clone()).unwrap());
    let mut dec = f.tok.stream_decoder();
    let mut opts = GenOptions {
        chain: Some(&mut chain),
        decoder: Some(Box::new(move |id, out: &mut Vec<u8>| {
            out.extend(dec.push(id))
        })),
        ..GenOptions::default()
    };
    if let Some(c) = constraint.as_mut() {
        opts.constraint = Some(c);
    }
    let params = GenParams {
        max_tokens: 300,
        sampling: SamplingParams::GREEDY,
        eos: f.tok.eos(),
    };
    let mut out = vec![0u32; 300];
    let mut text = Vec::new();
    let mut first: Option<Instant> = None;
    let o = generate_ex(
        &mut f.session,
        &prompt,
        0,
        &params,
        &mut opts,
        &mut out,
        &mut |_, t| {
            first.get_or_insert_with(Instant::now);
            text.extend_from_slice(t);
            true
        },
    )
    .unwrap();
    let secs = first.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    drop(opts);
    Run {
        masks: constraint.as_ref().map_or(0, |c| c.masks_computed()),
        text: String::from_utf8(text).expect("constrained output is UTF-8"),
        stop: o.stop,
        n: o.n_generated,
        secs_per_token: secs / (o.n_generated.max(2) - 1) as f64,
    }
}

fn grammar_file(name: &str) -> Arc<Grammar> {
    let t = std::fs::read_to_string(common::root().join("tests/data/grammars").join(name)).unwrap();
    Grammar::from_gbnf(&t).unwrap()
}

/// An independent checker for `expr = num` lines: integers, identifiers, + - * / and parentheses.
fn parse_arith(s: &str) -> bool {
    fn skip(b: &[u8], i: &mut usize) {
        while *i < b.len() && b[*i] == b' ' {
            *i += 1;
        }
    }
    fn term(b: &[u8], i: &mut usize) -> bool {
        skip(b, i);
        if *i < b.len() && b[*i] == b'(' {
            *i += 1;
            if !expr(b, i) {
                return false;
            }
            skip(b, i);
            if *i < b.len() && b[*i] == b')' {
                *i += 1;
                return true;
            }
            return false;
        }
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_') {
            *i += 1;
        }
        *i > start
    }
    fn expr(b: &[u8], i: &mut usize) -> bool {
        if !term(b, i) {
            return false;
        }
        loop {
            skip(b, i);
            if *i < b.len() && b"+-*/".contains(&b[*i]) {
                *i += 1;
                if !term(b, i) {
                    return false;
                }
            } else {
                return true;
            }
        }
    }
    let Some((lhs, rhs)) = s.split_once('=') else {
        return false;
    };
    let b = lhs.as_bytes();
    let mut i = 0;
    let ok = expr(b, &mut i);
    skip(b, &mut i);
    let r = rhs.trim();
    let r = r.strip_prefix('-').unwrap_or(r);
    ok && i == b.len() && !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit())
}

const ARITH: &str = "root ::= expr \" = \" num\nexpr ::= term (ws [-+*/] ws term)*\nterm ::= [0-9]{1,4} | \"(\" expr \")\"\nnum ::= \"-\"? [0-9]{1,6}\nws ::= \" \"?\n";

#[test]
fn every_constrained_output_parses() {
    let mut f = fixture();
    let json = grammar_file("json.gbnf");
    let choices = grammar_file("choices.gbnf");
    let arith = Grammar::from_gbnf(ARITH).unwrap();
    let schema = r#"{"type":"object","properties":{
        "name":{"type":"string","maxLength":40},"age":{"type":"integer"},
        "species":{"enum":["cat","dog","bird"]},"indoor":{"type":"boolean"},
        "toys":{"type":"array","items":{"type":"string","maxLength":30},"maxItems":3}},
        "required":["name","age","species"]}"#;
    let schema_g = Grammar::from_gbnf(&schema_to_gbnf(schema).unwrap()).unwrap();
    let list_schema = r#"{"type":"array","items":{"type":"object","properties":{
        "city":{"type":"string","maxLength":30},"country":{"type":"string","maxLength":30}},
        "required":["city","country"]},"minItems":1,"maxItems":3}"#;
    let list_g = Grammar::from_gbnf(&schema_to_gbnf(list_schema).unwrap()).unwrap();
    let mut failures = Vec::new();
    for seed in [None, Some(1u64), Some(2)] {
        let tag = match seed {
            None => "greedy".to_string(),
            Some(s) => format!("seed {s}"),
        };
        let r = run(
            &mut f,
            "Give a short JSON object with two keys, name and age, for a cat.",
            Some(&json),
            seed,
        );
        eprintln!(
            "json [{tag}] {:?} ({:?}, {} ids): {}",
            r.stop, r.stop, r.n, r.text
        );
        if r.stop != StopReason::Eos || serde_json::from_str::<serde_json::Value>(&r.text).is_err()
        {
            failures.push(format!("json [{tag}]: {:?} {}", r.stop, r.text));
        }
        let r = run(
            &mut f,
            "Give a JSON record of a pet: name, age, species.",
            Some(&schema_g),
            seed,
        );
        eprintln!("schema [{tag}] {:?}: {}", r.stop, r.text);
        let v: Option<serde_json::Value> = serde_json::from_str(&r.text).ok();
        let ok = v.as_ref().is_some_and(|v| {
            v["name"].is_string()
                && v["age"].is_i64()
                && ["cat", "dog", "bird"].contains(&v["species"].as_str().unwrap_or(""))
                && v.get("indoor").is_none_or(|x| x.is_boolean())
                && v.get("toys")
                    .is_none_or(|x| x.as_array().is_some_and(|a| a.len() <= 3))
                && v.as_object()
                    .unwrap()
                    .keys()
                    .all(|k| ["name", "age", "species", "indoor", "toys"].contains(&k.as_str()))
        });
        if r.stop != StopReason::Eos || !ok {
            failures.push(format!("schema [{tag}]: {:?} {}", r.stop, r.text));
        }
        let r = run(
            &mut f,
            "List two capital cities with their countries as JSON.",
            Some(&list_g),
            seed,
        );
        eprintln!("list schema [{tag}] {:?}: {}", r.stop, r.text);
        let v: Option<serde_json::Value> = serde_json::from_str(&r.text).ok();
        let ok = v.as_ref().and_then(|v| v.as_array()).is_some_and(|a| {
            !a.is_empty()
                && a.len() <= 3
                && a.iter()
                    .all(|o| o["city"].is_string() && o["country"].is_string())
        });
        if r.stop != StopReason::Eos || !ok {
            failures.push(format!("list schema [{tag}]: {:?} {}", r.stop, r.text));
        }
        let r = run(
            &mut f,
            "Write an arithmetic expression and its value, like 3 + 4 = 7.",
            Some(&arith),
            seed,
        );
        eprintln!("arithmetic [{tag}] {:?}: {}", r.stop, r.text);
        if r.stop != StopReason::Eos || !parse_arith(&r.text) {
            failures.push(format!("arithmetic [{tag}]: {:?} {}", r.stop, r.text));
        }
        let r = run(
            &mut f,
            "What colour is the sky? Answer with one word.",
            Some(&choices),
            seed,
        );
        eprintln!("choices [{tag}] {:?}: {}", r.stop, r.text);
        if r.stop != StopReason::Eos
            || !["red", "green", "blue", "yellow", "I don't know"].contains(&r.text.as_str())
        {
            failures.push(format!("choices [{tag}]: {:?} {}", r.stop, r.text));
        }
    }
    assert!(
        failures.is_empty(),
        "outputs that do not parse:\n{}",
        failures.join("\n")
    );
}

#[test]
fn constrained_step_cost() {
    let mut f = fixture();
    let json = grammar_file("json.gbnf");
    // Warm up, then compare per-token decode time (same prompt, greedy).
    let _ = run(&mut f, "Describe a dog as a JSON object.", None, None);
    let free = run(&mut f, "Describe a dog as a JSON object.", None, None);
    let cons = run(
        &mut f,
        "Describe a dog as a JSON object.",
        Some(&json),
        None,
    );
    eprintln!(
        "decode step: unconstrained {:.2} ms/token ({} ids), JSON grammar {:.2} ms/token ({} ids), ratio {:.2}",
        free.secs_per_token * 1e3,
        free.n,
        cons.secs_per_token * 1e3,
        cons.n,
        cons.secs_per_token / free.secs_per_token
    );
    eprintln!(
        "JSON run: the full mask was needed at {} of {} steps",
        cons.masks, cons.n
    );
    // The full mask alone, at the start and inside a string.
    let v = f.vocab.clone();
    for (what, prefix) in [
        ("start of object", ""),
        ("inside a string", "{\"name\": \"Fel"),
    ] {
        let mut k = GrammarConstraint::new(json.clone(), v.clone()).unwrap();
        let ids = f.tok.encode(prefix.as_bytes(), false, false);
        for &id in &ids {
            use qorus::generate::Constraint;
            k.accept(id).unwrap();
        }
        let t = Instant::now();
        let n = 5;
        let mut allowed = 0;
        for _ in 0..n {
            allowed = k.allowed().iter().filter(|&&a| a).count();
        }
        eprintln!(
            "full mask {what}: {:.2} ms, {allowed} of {} ids allowed",
            t.elapsed().as_secs_f64() * 1e3 / n as f64,
            v.len()
        );
    }
    assert!(cons.n > 5);
}
