//! Gemma 3's tokenizer (SentencePiece, 262,144 tokens, BOS added, no space prefix) from the Gemma 3
//! 270M GGUF against llama.cpp's ids (tests/data/tokenizer/gemma3_ids.txt, made by
//! scripts/reference/make_gemma_tokenizer_reference.py) on the tokenizer corpus plus Gemma's own
//! strings (corpus_gemma.txt: turn markers, whitespace runs, byte fallback), and exact decoding
//! round trips.
//!
//! Model: `scripts/fetch_models.py gemma3-270m` (fetched on first use).

mod common;

use common::unescape;
use qorus::format::gguf::Gguf;
use qorus::tokenizer::Tokenizer;

#[test]
fn gemma3_tokenizer_matches_llama_cpp() {
    let path = common::fetch_model("gemma3-270m");
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: a read-only mapping of a file nobody writes during the test.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let g = Gguf::parse(&map).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    assert_eq!(tok.vocab_size(), 262144);
    assert!(tok.add_bos_default());
    assert!(!tok.add_space_prefix());
    assert_eq!(tok.end_of_turn(), tok.token_id(b"<end_of_turn>"));

    let root = common::root().join("tests/data/tokenizer");
    let mut strings = Vec::new();
    for f in ["corpus.txt", "corpus_gemma.txt"] {
        let c = std::fs::read_to_string(root.join(f)).unwrap();
        strings.extend(c.strip_suffix('\n').unwrap_or(&c).split('\n').map(unescape));
    }
    let ids = std::fs::read_to_string(root.join("gemma3_ids.txt")).unwrap();
    let mut lines = ids.lines();
    assert!(lines.next().unwrap().starts_with('#'));
    let want: Vec<Vec<u32>> = lines
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(strings.len(), want.len());
    assert!(strings.len() >= 370);
    let mut bad = 0;
    for (s, w) in strings.iter().zip(&want) {
        let got = tok.encode(s, true, true);
        if &got != w {
            bad += 1;
            eprintln!(
                "ids differ for {:?}\n  ours  {got:?}\n  llama {w:?}",
                String::from_utf8_lossy(s)
            );
        }
    }
    println!("{} strings, {bad} differ from llama.cpp", strings.len());
    assert_eq!(bad, 0);
}
