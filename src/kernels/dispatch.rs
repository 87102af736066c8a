//! Run-time CPU feature detection, done once and cached.
//!
//! The level used by the kernels is the best one the CPU supports, capped by the environment
//! variable `QORUS_KERNELS` (`scalar`, `avx2` or `avx512`) for tests and benchmarks.

use std::sync::OnceLock;

/// A SIMD instruction-set level. Ordered: a higher level implies the lower ones are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Portable Rust, always available.
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX-512 F + BW + VL (plus everything of `Avx2`).
    Avx512,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Scalar, Level::Avx2, Level::Avx512];

    /// Lower-case name (`scalar`, `avx2`, `avx512`).
    pub const fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Parses a name as accepted by `QORUS_KERNELS`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" | "generic" => Some(Level::Scalar),
            "avx2" => Some(Level::Avx2),
            "avx512" | "avx-512" => Some(Level::Avx512),
            _ => None,
        }
    }
}

/// What the CPU offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Highest level the CPU supports.
    pub level: Level,
    /// AVX-512 VNNI (`vpdpbusd`) is available (only meaningful at `Level::Avx512`).
    pub vnni: bool,
}

fn detect() -> Features {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl");
        let vnni = avx512 && is_x86_feature_detected!("avx512vnni");
        let level = if avx512 {
            Level::Avx512
        } else if avx2 {
            Level::Avx2
        } else {
            Level::Scalar
        };
        Features { level, vnni }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Features {
            level: Level::Scalar,
            vnni: false,
        }
    }
}

/// The CPU's features (detected on first use).
pub fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(detect)
}

/// The highest level the CPU supports, ignoring `QORUS_KERNELS`.
pub fn detected() -> Level {
    features().level
}

/// The level the kernels use: the detected level capped by `QORUS_KERNELS`.
pub fn level() -> Level {
    static L: OnceLock<Level> = OnceLock::new();
    *L.get_or_init(|| {
        let cap = std::env::var("QORUS_KERNELS")
            .ok()
            .and_then(|s| Level::parse(&s))
            .unwrap_or(Level::Avx512);
        detected().min(cap)
    })
}

/// Whether `vpdpbusd` may be used (AVX-512 VNNI present and the level is `Avx512`).
pub fn vnni() -> bool {
    features().vnni
}

/// The levels this machine can run, lowest first (for tests and benchmarks).
pub fn available() -> Vec<Level> {
    Level::ALL
        .iter()
        .copied()
        .filter(|&l| l <= detected())
        .collect()
}

/// `want` capped to what the CPU supports (so a caller may ask for any level safely).
pub fn clamp(want: Level) -> Level {
    want.min(detected())
}
