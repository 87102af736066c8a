//! Rewriting a GGUF model with another weight type or quantization mix, like llama.cpp's
//! `llama-quantize` without an importance matrix.
//!
//! The type of every tensor comes from [`crate::format::quant_mix::plan`] (llama.cpp's mix
//! rules: which tensors are quantized, the output and `attn_v`/`ffn_down` upgrades of the K-quant
//! mixes, the fallbacks for rows that are not whole blocks). Each changed tensor is dequantized to
//! f32 row by row and quantized with qorus's ports of ggml's quantizers ([`crate::quant`],
//! bit-identical to `llama-quantize`'s); a tensor whose type does not change is copied byte for
//! byte. Metadata is copied in order, with `general.file_type` set to llama.cpp's file type
//! number for the mix and `general.quantization_version` = 2.

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::fileio::{map_input, OutFile};
use crate::format::gguf::{Gguf, Value};
use crate::format::gguf_write::{GgufWriter, TensorSpec};
use crate::format::quant_mix::{plan, Mix, ModelShape, PlanTensor};
use crate::quant::{dequantize_row, quantize_row, WeightType};

/// llama.cpp's `llama_ftype` for a file requantized to `ty` (see [`Mix::for_type`]).
pub fn file_type(ty: WeightType) -> Option<u32> {
    Mix::for_type(ty).map(Mix::ftype)
}

/// The type of every tensor of `g` (in file order) in a file of `mix`.
pub fn planned_types(g: &Gguf, mix: Mix, pure: bool) -> Result<Vec<WeightType>> {
    let mut tensors = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        let ty = t.ty.ok_or_else(|| {
            Error::InvalidDtype(format!(
                "tensor {}: ggml type {} is not supported",
                t.name, t.ggml_type
            ))
        })?;
        tensors.push(PlanTensor {
            name: &t.name,
            dims: &t.dims,
            ty,
        });
    }
    plan(&ModelShape::from_gguf(g), &tensors, mix, pure)
}

/// Converts the data of one tensor from its type to `to`, row by row.
pub fn convert_tensor(
    src: &[u8],
    from: WeightType,
    cols: usize,
    to: WeightType,
) -> Result<Vec<u8>> {
    if from == to {
        return Ok(src.to_vec());
    }
    let in_row = from
        .row_bytes(cols)
        .ok_or_else(|| Error::InvalidSize(format!("row of {cols} for {}", from.name())))?;
    let out_row = to
        .row_bytes(cols)
        .ok_or_else(|| Error::InvalidSize(format!("row of {cols} for {}", to.name())))?;
    if in_row == 0 || !src.len().is_multiple_of(in_row) {
        return Err(Error::InvalidSize(format!(
            "{} bytes are not whole rows of {in_row}",
            src.len()
        )));
    }
    let rows = src.len() / in_row;
    let mut out = vec![0u8; rows * out_row];
    let convert = |src: &[u8], out: &mut [u8]| -> Result<()> {
        let mut tmp = vec![0f32; cols];
        for (i, o) in src.chunks_exact(in_row).zip(out.chunks_exact_mut(out_row)) {
            dequantize_row(from, i, &mut tmp)?;
            quantize_row(to, &tmp, o)?;
        }
        Ok(())
    };
    // Rows are independent, so threads (each on a run of whole rows) give the same bytes.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    if threads < 2 || rows * cols < (1 << 16) {
        convert(src, &mut out)?;
        return Ok(out);
    }
    let per = rows.div_ceil(threads);
    std::thread::scope(|s| {
        let jobs: Vec<_> = src
            .chunks(per * in_row)
            .zip(out.chunks_mut(per * out_row))
            .map(|(i, o)| s.spawn(move || convert(i, o)))
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .map_err(|_| Error::Internal("a quantizer thread panicked".into()))?
        })
    })?;
    Ok(out)
}

/// Rewrites the GGUF model `in_path` into `out_path` with weight type `target`: the mix of that
/// type ([`Mix::for_type`]; `Q3_K`/`Q4_K`/`Q5_K` are the `_M` mixes). `out_path` may equal
/// `in_path`.
pub fn requantize(in_path: &Path, out_path: &Path, target: WeightType, pure: bool) -> Result<()> {
    let mix = Mix::for_type(target).ok_or_else(|| {
        Error::InvalidDtype(format!(
            "{} is not a GGUF tensor type (use ggml Q4_0)",
            target.name()
        ))
    })?;
    requantize_mix(in_path, out_path, mix, pure)
}

/// Rewrites the GGUF model `in_path` into `out_path` as a file of `mix` (see the module
/// documentation). `out_path` may equal `in_path`: the output is written under a temporary name
/// and renamed into place when complete.
pub fn requantize_mix(in_path: &Path, out_path: &Path, mix: Mix, pure: bool) -> Result<()> {
    let map = map_input(in_path)?;
    let shown = in_path.display().to_string();
    let g = Gguf::parse(&map).map_err(|e| match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(format!("{shown}: {m}")),
        other => other,
    })?;

    let mut metadata: Vec<(String, Value)> = g.metadata.clone();
    for (key, value) in [
        ("general.file_type", Value::U32(mix.ftype())),
        ("general.quantization_version", Value::U32(2)),
    ] {
        match metadata.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => metadata.push((key.to_string(), value)),
        }
    }

    let types = planned_types(&g, mix, pure)?;
    let plan: Vec<TensorSpec> = g
        .tensors
        .iter()
        .zip(&types)
        .map(|(t, &ty)| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty,
        })
        .collect();

    let mut out = OutFile::create(out_path)?;
    let shown_out = out.shown();
    let mut w = GgufWriter::new(&mut out, &shown_out, &metadata, &plan)?;
    for (t, spec) in g.tensors.iter().zip(&plan) {
        let src = g.tensor_bytes(&map, t)?;
        // `planned_types` rejected tensors of unsupported types.
        let from = t.ty.unwrap_or(spec.ty);
        let data = convert_tensor(src, from, t.dims[0] as usize, spec.ty)?;
        w.write_tensor(&data)?;
    }
    w.finish()?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::gguf_write::GgufWriter;

    fn sample(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.2
            })
            .collect()
    }

    /// A small llama-like GGUF with tied output: token_embd [64 x 8], one layer's norms and
    /// matrices, in F32.
    /// (name, dims, values) of each tensor.
    type Tensors = Vec<(String, Vec<u64>, Vec<f32>)>;

    fn tiny_model(dir: &Path) -> (std::path::PathBuf, Tensors) {
        let tensors: Vec<(String, Vec<u64>)> = vec![
            ("token_embd.weight".into(), vec![64, 8]),
            ("output_norm.weight".into(), vec![64]),
            ("blk.0.attn_norm.weight".into(), vec![64]),
            ("blk.0.attn_q.weight".into(), vec![64, 64]),
            ("blk.0.ffn_down.weight".into(), vec![96, 64]),
            ("blk.0.odd.weight".into(), vec![40, 2]),
        ];
        let data: Vec<(String, Vec<u64>, Vec<f32>)> = tensors
            .into_iter()
            .enumerate()
            .map(|(i, (n, d))| {
                let len = d.iter().product::<u64>() as usize;
                (n, d, sample(len, i as u32 + 1))
            })
            .collect();
        let meta = vec![
            (
                "general.architecture".to_string(),
                Value::String(b"llama".to_vec()),
            ),
            ("general.file_type".to_string(), Value::U32(0)),
            ("x.list".to_string(), Value::Array(vec![Value::I32(3); 3])),
        ];
        let specs: Vec<TensorSpec> = data
            .iter()
            .map(|(n, d, _)| TensorSpec {
                name: n.clone(),
                dims: d.clone(),
                ty: WeightType::F32,
            })
            .collect();
        let path = dir.join("tiny-f32.gguf");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut w = GgufWriter::new(&mut f, "tiny", &meta, &specs).unwrap();
        for (_, _, v) in &data {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_tensor(&b).unwrap();
        }
        w.finish().unwrap();
        (path, data)
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("qorus-rq-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn types_follow_the_rules_and_data_is_the_reference_quantization() {
        let dir = tmpdir("rules");
        let (src, data) = tiny_model(&dir);
        for (target, pure) in [
            (WeightType::Q4_0, true),
            (WeightType::Q4_0, false),
            (WeightType::Q4_1, false),
            (WeightType::Q8_0, false),
            (WeightType::F16, true),
            (WeightType::BF16, true),
        ] {
            let out = dir.join(format!("out-{}-{pure}.gguf", target.name()));
            requantize(&src, &out, target, pure).unwrap();
            let bytes = std::fs::read(&out).unwrap();
            let g = Gguf::parse(&bytes).unwrap();
            assert_eq!(
                g.get_u64("general.file_type"),
                file_type(target).map(u64::from)
            );
            assert_eq!(g.get_u64("general.quantization_version"), Some(2));
            assert_eq!(g.get("x.list"), Some(&Value::Array(vec![Value::I32(3); 3])));
            for (name, dims, values) in &data {
                let t = g.tensor(name).unwrap();
                let expect = if dims.len() == 1 {
                    WeightType::F32
                } else if name == "blk.0.odd.weight" && target.block_len() == 32 {
                    WeightType::F16 // 40 is not whole 32-blocks
                } else if name == "token_embd.weight" && !pure && target.block_len() == 32 {
                    WeightType::Q8_0 // tied output of a 4-bit (or Q8_0) file
                } else {
                    target
                };
                assert_eq!(t.ty, Some(expect), "{name} in {target:?} pure={pure}");
                let mut q = vec![0u8; expect.row_bytes(values.len()).unwrap()];
                quantize_row(expect, values, &mut q).unwrap();
                assert_eq!(g.tensor_bytes(&bytes, t).unwrap(), &q[..], "{name}");
            }
        }
        // requantizing in place and from a quantized source
        let q8 = dir.join("out-q8_0-false.gguf");
        let copy = dir.join("copy.gguf");
        std::fs::copy(&q8, &copy).unwrap();
        requantize(&copy, &copy, WeightType::Q4_0, true).unwrap();
        let g = Gguf::parse(&std::fs::read(&copy).unwrap()).unwrap();
        assert_eq!(
            g.tensor("blk.0.attn_q.weight").unwrap().ty,
            Some(WeightType::Q4_0)
        );
        // no temporary file is left behind
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp.")
            })
            .count();
        assert_eq!(leftovers, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn threaded_conversion_equals_row_by_row() {
        // 512 rows of 256: large enough for the threaded path
        let (rows, cols) = (512, 256);
        let x = sample(rows * cols, 7);
        let f32_bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        for to in [WeightType::Q4_K, WeightType::IQ4_XS, WeightType::Q5_0] {
            let got = convert_tensor(&f32_bytes, WeightType::F32, cols, to).unwrap();
            let rb = to.row_bytes(cols).unwrap();
            let mut want = vec![0u8; rows * rb];
            for (r, o) in x.chunks_exact(cols).zip(want.chunks_exact_mut(rb)) {
                quantize_row(to, r, o).unwrap();
            }
            assert_eq!(got, want, "{}", to.name());
        }
    }

    #[test]
    fn model_shape_from_metadata() {
        let dir = tmpdir("shape");
        let path = dir.join("m.gguf");
        let meta = vec![
            (
                "general.architecture".to_string(),
                Value::String(b"llama".to_vec()),
            ),
            ("llama.block_count".to_string(), Value::U32(80)),
            ("llama.attention.head_count".to_string(), Value::U32(64)),
            ("llama.attention.head_count_kv".to_string(), Value::U32(8)),
        ];
        let mut f = std::fs::File::create(&path).unwrap();
        GgufWriter::new(&mut f, "m", &meta, &[])
            .unwrap()
            .finish()
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let s = ModelShape::from_gguf(&Gguf::parse(&bytes).unwrap());
        assert_eq!(
            s,
            ModelShape {
                arch: "llama".into(),
                n_layer: 80,
                n_gqa: 8,
                n_expert: 0,
                is_70b: true,
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors() {
        let dir = tmpdir("errors");
        let (src, _) = tiny_model(&dir);
        let out = dir.join("x.gguf");
        assert_eq!(
            requantize(&src, &out, WeightType::QorusQ4_0, true)
                .unwrap_err()
                .code(),
            crate::ffi::types::Q_ERR_INVALID_DTYPE
        );
        assert_eq!(
            requantize(&dir.join("missing.gguf"), &out, WeightType::Q8_0, true)
                .unwrap_err()
                .code(),
            crate::ffi::types::Q_ERR_FILE_OPEN
        );
        std::fs::write(dir.join("junk.gguf"), b"not a gguf file at all").unwrap();
        assert_eq!(
            requantize(&dir.join("junk.gguf"), &out, WeightType::Q8_0, true)
                .unwrap_err()
                .code(),
            crate::ffi::types::Q_ERR_INVALID_MAGIC
        );
        assert!(!out.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
