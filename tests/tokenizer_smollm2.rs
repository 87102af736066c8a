//! SmolLM2's tokenizer (from the Q4_1 GGUF) in Rust: the committed llama.cpp ids for the whole
//! corpus, exact round trips through the streaming decoder, speed on the 10 kB string, and the
//! conversion to the spec's tokenizer file.
//!
//! Model: `tests/common::model("q4_1")` (fetched by scripts/fetch_models.py on first use).

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::unescape;
use qorus::format::gguf::Gguf;
use qorus::format::tokenizer_file::{write_from_gguf, TokenizerFile};
use qorus::tokenizer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_path() -> PathBuf {
    common::model("q4_1")
}

fn with_gguf<R>(f: impl FnOnce(&Gguf) -> R) -> R {
    let file = std::fs::File::open(model_path()).unwrap();
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let g = Gguf::parse(&map).unwrap();
    f(&g)
}

fn corpus() -> Vec<(Vec<u8>, Vec<u32>)> {
    let c = std::fs::read_to_string(root().join("tests/data/tokenizer/corpus.txt")).unwrap();
    let ids = std::fs::read_to_string(root().join("tests/data/tokenizer/smollm2_ids.txt")).unwrap();
    let mut id_lines = ids.lines();
    let header = id_lines.next().unwrap();
    assert!(header.contains("add_bos=0"), "{header}");
    let strings: Vec<&str> = c.strip_suffix('\n').unwrap_or(&c).split('\n').collect();
    let id_lines: Vec<&str> = id_lines.collect();
    assert_eq!(strings.len(), id_lines.len());
    assert!(strings.len() >= 300);
    strings
        .iter()
        .zip(id_lines)
        .map(|(s, l)| {
            (
                unescape(s),
                l.split_whitespace().map(|t| t.parse().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn corpus_ids_and_round_trips() {
    with_gguf(|g| {
        let tok = Tokenizer::from_gguf(g).unwrap();
        assert!(!tok.add_bos_default());
        assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
        let cases = corpus();
        let mut bad_ids = 0;
        let mut bad_rt = 0;
        for (s, want) in &cases {
            let got = tok.encode(s, false, true);
            if &got != want {
                bad_ids += 1;
                eprintln!("ids differ: {:?}", String::from_utf8_lossy(s));
            }
            // Stream decoding: every chunk is whole characters; the total is the input.
            let mut d = tok.stream_decoder();
            let mut all = Vec::new();
            for &id in &got {
                let chunk = d.push(id);
                assert!(std::str::from_utf8(&chunk).is_ok(), "split character");
                all.extend(chunk);
            }
            all.extend(d.finish());
            if &all != s || tok.decode(&got) != *s {
                bad_rt += 1;
                eprintln!("round trip differs: {:?}", String::from_utf8_lossy(s));
            }
        }
        println!(
            "corpus: {} strings, ids identical {}, round trips exact {}",
            cases.len(),
            cases.len() - bad_ids,
            cases.len() - bad_rt
        );
        assert_eq!((bad_ids, bad_rt), (0, 0));
    });
}

#[test]
fn encodes_ten_kilobytes_fast() {
    with_gguf(|g| {
        let tok = Tokenizer::from_gguf(g).unwrap();
        let (long, want) = corpus().into_iter().max_by_key(|(s, _)| s.len()).unwrap();
        assert!(long.len() >= 10_000, "{}", long.len());
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            assert_eq!(tok.encode(&long, false, true), want);
        }
        let per = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "encode {} bytes: {:.3} ms per call, {:.3} ms per kB",
            long.len(),
            per * 1e3,
            per * 1e3 / (long.len() as f64 / 1024.0)
        );
        if !cfg!(debug_assertions) {
            assert!(per < 0.020, "encoding 10 kB took {:.3} ms", per * 1e3);
        }
    });
}

#[test]
fn converts_to_tokenizer_file() {
    with_gguf(|g| {
        let tok = Tokenizer::from_gguf(g).unwrap();
        let dir = std::env::temp_dir().join(format!("qorus-tokfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("smollm2.tok");
        write_from_gguf(g, &path).unwrap();
        let f = TokenizerFile::read(&path).unwrap();
        assert_eq!(f.vocab.len(), tok.vocab_size());
        for (i, e) in f.vocab.iter().enumerate() {
            assert_eq!(
                e.as_slice(),
                tok.token_bytes(i as u32).unwrap(),
                "entry {i}"
            );
        }
        assert_eq!(f.merges.as_slice(), tok.merge_ids());
        assert_eq!(f.merges.len(), 48900);
        assert_eq!((f.bos, f.eos, f.pad), (1, 2, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    });
}
