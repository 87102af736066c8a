//! The planner against the per-tensor types `llama-quantize` 0c1e570 chose for SmolLM2-135M and
//! for the random LLaMA of scripts/reference/make_random_llama.py (tests/data/quant_mix, made by
//! scripts/reference/make_mix_table.py with `llama-quantize --dry-run`). The models are described
//! by their tensor shapes only, so no model file is needed.

use super::*;

/// The tensors of a LLaMA model: (name, ggml dims, type) with F16 matrices and F32 norms.
fn llama_tensors(
    n_layer: usize,
    dim: u64,
    ffn: u64,
    kv: u64,
    vocab: u64,
    tied: bool,
) -> Vec<(String, Vec<u64>, WeightType)> {
    let (m, v) = (WeightType::F16, WeightType::F32);
    let mut t = vec![
        ("token_embd.weight".to_string(), vec![dim, vocab], m),
        ("output_norm.weight".to_string(), vec![dim], v),
    ];
    if !tied {
        t.push(("output.weight".to_string(), vec![dim, vocab], m));
    }
    for i in 0..n_layer {
        let p = format!("blk.{i}.");
        for (n, d, ty) in [
            ("attn_norm", vec![dim], v),
            ("attn_q", vec![dim, dim], m),
            ("attn_k", vec![dim, kv], m),
            ("attn_v", vec![dim, kv], m),
            ("attn_output", vec![dim, dim], m),
            ("ffn_norm", vec![dim], v),
            ("ffn_gate", vec![dim, ffn], m),
            ("ffn_up", vec![dim, ffn], m),
            ("ffn_down", vec![ffn, dim], m),
        ] {
            t.push((format!("{p}{n}.weight"), d, ty));
        }
    }
    t
}

/// Checks every line of a table file against `plan`; returns the number of types compared.
fn check_table(
    file: &str,
    shape: &ModelShape,
    tensors: &[(String, Vec<u64>, WeightType)],
) -> usize {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/quant_mix")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let pt: Vec<PlanTensor> = tensors
        .iter()
        .map(|(n, d, t)| PlanTensor {
            name: n,
            dims: d,
            ty: *t,
        })
        .collect();
    let mut compared = 0;
    let mut mixes_seen = std::collections::HashSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let mix = Mix::from_name(f[0]).unwrap_or_else(|| panic!("{file}: mix {}", f[0]));
        mixes_seen.insert(mix);
        let types = plan(shape, &pt, mix, false).unwrap();
        let type_of = |name: &str| {
            let i = tensors.iter().position(|t| t.0 == name).unwrap();
            types[i].name()
        };
        let names: Vec<String> = if f[1] == "token_embd" || f[1] == "output" {
            vec![format!("{}.weight", f[1])]
        } else {
            (0..f.len() - 2)
                .map(|i| format!("blk.{i}.{}.weight", f[1]))
                .collect()
        };
        assert_eq!(names.len(), f.len() - 2, "{file}: {line}");
        for (name, want) in names.iter().zip(&f[2..]) {
            assert_eq!(type_of(name), *want, "{file}: {} {name}", f[0]);
            compared += 1;
        }
        // norms are never quantized
        for (i, t) in tensors.iter().enumerate() {
            if t.1.len() == 1 {
                assert_eq!(types[i], WeightType::F32, "{} {}", f[0], t.0);
            }
        }
    }
    assert_eq!(
        mixes_seen.len(),
        Mix::ALL.len(),
        "{file}: every mix is in the table"
    );
    compared
}

#[test]
fn smollm2_types_equal_llama_quantize() {
    let shape = ModelShape {
        arch: "llama".into(),
        n_layer: 30,
        n_gqa: 3,
        n_expert: 0,
        is_70b: false,
    };
    let tensors = llama_tensors(30, 576, 1536, 192, 49152, true);
    // 19 mixes x (1 token_embd + 7 roles x 30 layers)
    assert_eq!(check_table("smollm2.txt", &shape, &tensors), 19 * 211);
}

#[test]
fn random_llama_types_equal_llama_quantize() {
    let shape = ModelShape {
        arch: "llama".into(),
        n_layer: 4,
        n_gqa: 4,
        n_expert: 0,
        is_70b: false,
    };
    let tensors = llama_tensors(4, 512, 1536, 128, 49152, false);
    assert_eq!(check_table("random_llama.txt", &shape, &tensors), 19 * 30);
}

#[test]
fn pure_gives_the_base_type_with_fallbacks() {
    let shape = ModelShape {
        arch: "llama".into(),
        n_layer: 30,
        n_gqa: 3,
        n_expert: 0,
        is_70b: false,
    };
    let tensors = llama_tensors(30, 576, 1536, 192, 49152, true);
    let pt: Vec<PlanTensor> = tensors
        .iter()
        .map(|(n, d, t)| PlanTensor {
            name: n,
            dims: d,
            ty: *t,
        })
        .collect();
    let types = plan(&shape, &pt, Mix::Q4_K_M, true).unwrap();
    for ((name, dims, _), ty) in tensors.iter().zip(types) {
        let want = match (dims.len(), dims[0]) {
            (1, _) => WeightType::F32,
            (_, 1536) => WeightType::Q4_K, // ffn_down rows are 6 super-blocks
            _ => WeightType::Q5_0,         // 576 is not: Q4_K -> Q5_0
        };
        assert_eq!(ty, want, "{name}");
    }
}
