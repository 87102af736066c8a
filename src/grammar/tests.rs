use super::json_schema::schema_to_gbnf;
use super::*;

fn g(text: &str) -> Grammar {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn data(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/grammars/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn json_grammar_accepts_json_and_refuses_the_rest() {
    let j = g(&data("json.gbnf"));
    for ok in [
        "{}",
        "{\"a\": 1}",
        "{\"a\": [1, 2.5, -3e10, \"x\\n\", true, null, {\"b\": {}}]}\n",
        "{ \"k\\u00e9\": \"caf\u{e9} \u{1F600}\" }",
    ] {
        assert!(j.matches_text(ok).unwrap(), "{ok}");
    }
    for bad in [
        "",
        "{",
        "[]",
        "{\"a\" 1}",
        "{\"a\": 01}",
        "{\"a\": tru}",
        "{'a': 1}",
        "{} x",
    ] {
        assert!(!j.matches_text(bad).unwrap(), "{bad}");
    }
}

#[test]
fn arithmetic_and_choices() {
    let a = g(&data("arithmetic.gbnf"));
    assert!(a.matches_text("1+2*(x-3)=y\n").unwrap());
    assert!(a.matches_text("12 /(4) = 3\nx=y\n").unwrap());
    assert!(!a.matches_text("1+=2\n").unwrap());
    assert!(!a.matches_text("(1=2\n").unwrap());
    let c = g(&data("choices.gbnf"));
    assert!(c.matches_text("blue").unwrap());
    assert!(c.matches_text("I don't know").unwrap());
    assert!(!c.matches_text("blu").unwrap());
    assert!(!c.matches_text("blues").unwrap());
}

#[test]
fn repetitions_classes_escapes() {
    let r = g("root ::= [a-c]{2,3} \"\\x41\" [^0-9]? .+ \"\\u00e9\"{2}\n");
    assert!(r.matches_text("abA!xéé").unwrap());
    assert!(r.matches_text("abcAxxéé").unwrap());
    assert!(!r.matches_text("aAxéé").unwrap());
    assert!(!r.matches_text("abcdAxéé").unwrap());
    assert!(!r.matches_text("abAéé").unwrap());
    let r = g("root ::= (\"ab\" | \"c\")* \"d\" # comment\n# more\n");
    assert!(r.matches_text("ababcd").unwrap());
    assert!(r.matches_text("d").unwrap());
    assert!(!r.matches_text("abd ").unwrap());
}

#[test]
fn parse_errors_name_line_and_column() {
    let cases = [
        (
            "root ::= \"a\"\nfoo ::= bar\n",
            "line 2, column 9",
            "undefined rule bar",
        ),
        ("root ::= [ab\n", "line 1, column 10", "character class"),
        (
            "root ::= \"abc\n",
            "line 1, column 10",
            "unterminated string",
        ),
        ("root ::= (\"a\"\n", "line 1, column 10", "')'"),
        ("root \"a\"\n", "line 1, column 6", "::="),
        (
            "root ::= \"a\"\n  x ::= * \"b\"\n",
            "line 2, column 9",
            "repetition",
        ),
        ("root ::= \"\\q\"\n", "line 1, column 11", "escape"),
        ("root ::= \"a\"{3,1}\n", "line 1, column 13", "maximum"),
        ("a ::= \"x\"\n", "line 1, column 1", "root"),
        (
            "root ::= \"a\"\nroot ::= \"b\"\n",
            "line 2, column 1",
            "twice",
        ),
    ];
    for (text, at, what) in cases {
        let e = parse(text)
            .err()
            .unwrap_or_else(|| panic!("{text:?} parsed"))
            .to_string();
        assert!(e.contains(at) && e.contains(what), "{text:?}: {e}");
    }
    let e = parse("root ::= a\na ::= root \"x\" | \"y\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("left-recursive"), "{e}");
    let e = parse("root ::= (\"a\"?)*\n").err().unwrap().to_string();
    assert!(e.contains("left-recursive"), "{e}");
    let deep = format!("root ::= {}\"a\"{}\n", "(".repeat(500), ")".repeat(500));
    assert!(parse(&deep).is_err());
}

#[test]
fn schema_subset_converts() {
    let s = r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
        "tags":{"type":"array","items":{"type":"string"},"maxItems":3},
        "kind":{"enum":["cat","dog",3,null]},"ok":{"type":"boolean"},"n":{"type":["number","null"]}},
        "required":["name","age"]}"#;
    let gb = schema_to_gbnf(s).unwrap();
    let gr = g(&gb);
    for ok in [
        r#"{"name": "Bo", "age": 3}"#,
        r#"{"name":"Bo","age":-3,"tags":["a","b","c"],"kind":"dog","ok":true,"n":null}"#,
        r#"{"name":"Bo","age":3,"kind":3,"n":1.5e3}"#,
        r#"{"name":"Bo","age":3,"ok":false}"#,
    ] {
        assert!(gr.matches_text(ok).unwrap(), "{ok}\n{gb}");
    }
    for bad in [
        r#"{"age": 3, "name": "Bo"}"#,
        r#"{"name": "Bo"}"#,
        r#"{"name":"Bo","age":3.5}"#,
        r#"{"name":"Bo","age":3,"tags":["a","b","c","d"]}"#,
        r#"{"name":"Bo","age":3,"kind":"cow"}"#,
        r#"{"name":"Bo","age":3,"extra":1}"#,
        r#"{"name":"Bo","age":3,}"#,
    ] {
        assert!(!gr.matches_text(bad).unwrap(), "{bad}");
    }
    // only optional properties
    let gr = g(&schema_to_gbnf(r#"{"properties":{"a":{"type":"null"},"b":{"const":1}}}"#).unwrap());
    for ok in ["{}", r#"{"a":null}"#, r#"{"b":1}"#, r#"{"a":null,"b":1}"#] {
        assert!(gr.matches_text(ok).unwrap(), "{ok}");
    }
    assert!(!gr.matches_text(r#"{"b":1,"a":null}"#).unwrap());
    assert!(!gr.matches_text(r#"{,"b":1}"#).unwrap());
    // arrays with bounds, strings with lengths
    let gr = g(&schema_to_gbnf(
        r#"{"type":"array","items":{"type":"string","minLength":1,"maxLength":2},"minItems":2,"maxItems":3}"#,
    )
    .unwrap());
    assert!(gr.matches_text(r#"["a","bc"]"#).unwrap());
    assert!(gr.matches_text(r#"["a","bc","d"]"#).unwrap());
    assert!(!gr.matches_text(r#"["a"]"#).unwrap());
    assert!(!gr.matches_text(r#"["a","","d"]"#).unwrap());
    assert!(!gr.matches_text(r#"["a","b","c","d"]"#).unwrap());
    assert!(g(&schema_to_gbnf("true").unwrap())
        .matches_text("[1, {}]")
        .unwrap());
}

#[test]
fn schema_errors_are_named() {
    for (s, what) in [
        (
            r##"{"type":"object","properties":{"a":{"$ref":"#/x"}}}"##,
            "#/properties/a: keyword $ref",
        ),
        (r#"{"type":"string","pattern":"a+"}"#, "pattern"),
        (r#"{"type":"integer","minimum":3}"#, "minimum"),
        (r#"{"type":"date"}"#, "type date"),
        (
            r#"{"type":"object","properties":{},"required":["x"]}"#,
            "required property x",
        ),
        (r#"{"enum":[]}"#, "enum is empty"),
        ("false", "matches nothing"),
        ("{\"type\": \n 3}", "type must be"),
        ("{\"type\": ", "line 1, column 9"),
    ] {
        let e = schema_to_gbnf(s)
            .err()
            .unwrap_or_else(|| panic!("{s} converted"))
            .to_string();
        assert!(e.contains(what), "{s}: {e}");
    }
}

#[test]
fn vocabulary_mask_equals_token_by_token_checks() {
    // A toy vocabulary with multi-character, partial-UTF-8 and control tokens.
    let toks: Vec<(&[u8], bool)> = vec![
        (b"{", false),
        (b"}", false),
        (b"\"", false),
        (b"\"a", false),
        (b"a\"", false),
        (b":", false),
        (b" ", false),
        (b"1", false),
        (b"12", false),
        (b"<eos>", true),
        (b"\xc3", false),
        (b"\xa9", false),
        (b"\xc3\xa9", false),
        (b"ab", false),
        (b"", false),
        (b"{\"", false),
    ];
    let eos = 9u32;
    let v = Arc::new(VocabIndex::new(
        toks.iter().map(|(b, c)| (b.to_vec(), *c)).collect(),
        Some(eos),
    ));
    let gr = Arc::new(g(&data("json.gbnf")));
    let mut k = GrammarConstraint::new(gr, v.clone()).unwrap();
    use crate::generate::Constraint;
    let path = [15u32, 13, 10, 11, 2, 5, 6, 8, 1];
    for &id in &path {
        let allowed = k.allowed();
        for t in 0..toks.len() as u32 {
            assert_eq!(allowed[t as usize], k.allows(t), "token {t} before {id}");
        }
        assert!(allowed[id as usize], "{id} should be allowed");
        assert!(!allowed[eos as usize]);
        k.accept(id).unwrap();
    }
    assert!(k.is_complete());
    assert!(k.allows(eos));
    assert!(!k.allows(0));
    assert!(k.accept(0).is_err());
}

#[test]
fn unfinished_characters_have_their_real_range() {
    use super::vocab::tests_decode as d;
    assert_eq!(d(b"a\xc3"), Some((vec![97], Some((0xC0, 0xFF)))));
    assert_eq!(d(b"\xe2"), Some((vec![], Some((0x2000, 0x2FFF)))));
    assert_eq!(d(b"\xe0"), Some((vec![], Some((0x800, 0xFFF)))));
    assert_eq!(d(b"\xf0"), Some((vec![], Some((0x10000, 0x3FFFF)))));
    assert_eq!(d(b"\xf0\x9f"), Some((vec![], Some((0x1F000, 0x1FFFF)))));
    assert_eq!(d(b"\xf4\x90"), None); // beyond U+10FFFF
    assert_eq!(d(b"\xa9"), None);
}
