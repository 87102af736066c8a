//! The SmolLM2 test models: every variant exists, parses, has the expected tensor types, and the
//! quantized weights are close to the F16 ones. Run with `--release` (the first run derives the
//! variants, about 400 MB).

mod common;

use qorus::format::gguf::Gguf;
use qorus::format::qorus_file;
use qorus::quant::{dequantize_row, WeightType};

fn load(variant: &str) -> (memmap2::Mmap, Gguf) {
    let path = common::model(variant);
    let f = std::fs::File::open(&path).unwrap();
    // SAFETY: test files are not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    let g = Gguf::parse(&map).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (map, g)
}

fn values(map: &[u8], g: &Gguf, name: &str) -> Vec<f32> {
    let t = g.tensor(name).unwrap();
    let mut v = vec![0f32; t.n_elements() as usize];
    dequantize_row(t.ty.unwrap(), g.tensor_bytes(map, t).unwrap(), &mut v).unwrap();
    v
}

#[test]
fn variants_have_the_expected_types() {
    let (_, orig) = load("q4_1");
    for (variant, matrix_ty, ftype) in [
        ("f16", WeightType::F16, 1),
        ("q8_0", WeightType::Q8_0, 7),
        ("q4_0", WeightType::Q4_0, 2),
    ] {
        let (_, g) = load(variant);
        assert_eq!(g.get_u64("general.file_type"), Some(ftype), "{variant}");
        assert_eq!(g.tensors.len(), orig.tensors.len());
        assert!(
            g.tensor("output.weight").is_none(),
            "tied output stays tied"
        );
        for t in &g.tensors {
            let o = orig.tensor(&t.name).unwrap();
            assert_eq!(t.dims, o.dims, "{variant} {}", t.name);
            let want = if t.dims.len() == 1 {
                WeightType::F32
            } else {
                matrix_ty // pure: token_embd too
            };
            assert_eq!(t.ty, Some(want), "{variant} {}", t.name);
        }
        // the tokenizer and hyperparameters are carried over
        for key in [
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.merges",
            "llama.attention.layer_norm_rms_epsilon",
            "llama.rope.freq_base",
        ] {
            assert_eq!(g.get(key), orig.get(key), "{variant} {key}");
        }
    }
}

/// Relative RMS error of `a` against `b`, and the largest error relative to the largest |b| of
/// the same 32-value block.
fn errors(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut num, mut den, mut worst) = (0f64, 0f64, 0f64);
    for (ba, bb) in a.chunks(32).zip(b.chunks(32)) {
        let amax = bb.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        for (&x, &y) in ba.iter().zip(bb) {
            let e = (x - y) as f64;
            num += e * e;
            den += (y as f64) * (y as f64);
            if amax > 0.0 {
                worst = worst.max(e.abs() / amax);
            }
        }
    }
    ((num / den).sqrt(), worst)
}

#[test]
fn quantized_weights_are_close_to_f16() {
    let (m16, g16) = load("f16");
    let (m8, g8) = load("q8_0");
    let (m4, g4) = load("q4_0");
    let (mut worst8, mut worst4) = ((0f64, 0f64), (0f64, 0f64));
    for t in g16.tensors.iter().filter(|t| t.dims.len() == 2) {
        let base = values(&m16, &g16, &t.name);
        let e8 = errors(&values(&m8, &g8, &t.name), &base);
        let e4 = errors(&values(&m4, &g4, &t.name), &base);
        worst8 = (worst8.0.max(e8.0), worst8.1.max(e8.1));
        worst4 = (worst4.0.max(e4.0), worst4.1.max(e4.1));
    }
    println!(
        "Q8_0 vs F16: worst tensor relative RMS error {:.4}, worst element error / block max {:.4}",
        worst8.0, worst8.1
    );
    println!(
        "Q4_0 vs F16: worst tensor relative RMS error {:.4}, worst element error / block max {:.4}",
        worst4.0, worst4.1
    );
    // Q8_0: half a step of max/127 (plus the f16 rounding of the scale)
    assert!(worst8.1 <= 0.5 / 127.0 + 1e-3, "{worst8:?}");
    assert!(worst8.0 < 0.01, "{worst8:?}");
    // Q4_0: at most one step of max/8 (the clamped end), typically half
    assert!(worst4.1 <= 1.0 / 8.0 + 1e-3, "{worst4:?}");
    assert!(worst4.0 < 0.15, "{worst4:?}");
    // 1-D tensors are copied exactly
    for t in g16.tensors.iter().filter(|t| t.dims.len() == 1) {
        assert_eq!(
            g16.tensor_bytes(&m16, t).unwrap(),
            g8.tensor_bytes(&m8, g8.tensor(&t.name).unwrap()).unwrap()
        );
    }
}

#[test]
fn f16_holds_the_original_values() {
    let (mo, go) = load("q4_1");
    let (m16, g16) = load("f16");
    for t in &go.tensors {
        let a = values(&mo, &go, &t.name);
        let b = values(&m16, &g16, &t.name);
        for (x, y) in a.iter().zip(&b) {
            // f16 rounding of each value (relative 2^-11), or exact for F32 norms
            assert!(
                (x - y).abs() <= x.abs() * 4.9e-4 + 6e-8,
                "{}: {x} vs {y}",
                t.name
            );
        }
    }
}

#[test]
fn qorus_file_matches_the_q4_0_model() {
    let (m4, g4) = load("q4_0");
    let path = common::model("q4_0.qorus");
    let file = std::fs::read(&path).unwrap();
    let h = qorus_file::read_header(&file).unwrap();
    assert_eq!(
        (h.version, h.vocab_size, h.dim, h.hidden_dim, h.n_layers),
        (2, 49152, 576, 1536, 30)
    );
    assert_eq!((h.n_heads, h.n_kv_heads, h.max_seq_len), (9, 3, 8192));
    assert_eq!({ h.rms_norm_eps }, 1e-5);
    assert_eq!({ h.rope_freq_base }, 100000.0);
    let l = qorus_file::layout(&h, file.len()).unwrap();
    assert_eq!(l.end, file.len());
    for t in &l.tensors {
        let src = if t.name == "output.weight" {
            "token_embd.weight"
        } else {
            &t.name
        };
        let want = values(&m4, &g4, src);
        let mut got = vec![0f32; t.rows * t.cols];
        dequantize_row(t.ty, &file[t.range()], &mut got).unwrap();
        assert!(
            got == want,
            "{} differs from {src} of the Q4_0 GGUF",
            t.name
        );
    }
}

/// c_tests/models_convert.c, against libqorus.so and libqorus.a: every variant loads through
/// `q_init_memory`, and the C conversion functions remake the pinned files.
#[test]
fn c_api_loads_and_converts_the_models() {
    let envs: Vec<(&str, String)> = [
        ("QORUS_MODEL_Q4_1", "q4_1"),
        ("QORUS_MODEL_F16", "f16"),
        ("QORUS_MODEL_Q8_0", "q8_0"),
        ("QORUS_MODEL_Q4_0", "q4_0"),
        ("QORUS_MODEL_Q4_0_QORUS", "q4_0.qorus"),
    ]
    .into_iter()
    .map(|(k, v)| (k, common::model(v).display().to_string()))
    .collect();
    common::build_and_run_c("models_convert", &envs);
}
