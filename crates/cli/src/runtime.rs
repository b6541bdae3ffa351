//! Process-wide settings for tensor workloads on the CPU, applied at start-up: glibc
//! malloc thresholds and arenas, and candle's elementwise thread pool.
//!
//! Malloc: candle allocates a fresh buffer for every tensor op. glibc serves blocks above its
//! dynamic mmap threshold (128 KiB at first) with `mmap` and returns freed heap tops to
//! the kernel, so an HVP's many activation-sized temporaries each cost page faults and
//! zeroing. Keeping blocks up to 32 MiB on the heap and trimming only above 1 GiB
//! measured 25-30% faster MLP gradients and HVPs (`saddlescope bench`, README
//! "Performance"); peak memory is unchanged. A global allocator (mimalloc) was slower here
//! and raised peak memory by 70-100 MB. One malloc arena for all threads: forward and
//! backward passes run on rayon's workers, and with an arena per thread a tensor freed by
//! one worker was not reused by the next op on the other, so memory kept coming fresh from
//! the kernel (MNIST CNN HVP 80 → 65 ms, its gradient's peak 88-144 → 67 MB; ResNet-32 HVP
//! within 3%).

/// Applies both settings; each one yields to the environment variable that controls it.
pub fn tune() {
    tune_malloc();
    single_thread_elementwise();
}

/// The malloc settings above, unless `GLIBC_TUNABLES` is set (the user's choice wins,
/// and `GLIBC_TUNABLES=glibc.malloc.perturb=0` measures glibc's defaults). Other
/// platforms and C libraries: nothing.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        glibc::tune();
    }
}

/// `CANDLE_NUM_THREADS=1` unless set. candle 0.11 runs CPU elementwise ops on its own
/// thread pool whose caller spins until every worker is done; next to other jobs (or to
/// rayon's threads, which run saddlescope's GEMMs) a descheduled worker stalls the caller.
/// On the shared 2-core machine of README "Performance" this made ResNet-32 HVPs 1.5x and
/// MLP gradients 3x slower. The heavy work (convolutions, matrix products) stays parallel
/// on rayon's pool (`RAYON_NUM_THREADS`).
fn single_thread_elementwise() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Called first thing in `main`, before any thread exists.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    // <malloc.h>
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    const M_ARENA_MAX: c_int = -8;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    pub fn tune() {
        // SAFETY: mallopt only changes allocator parameters; it is called once at start-up,
        // before any other thread exists. A failure (return 0) leaves the defaults.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
            mallopt(M_ARENA_MAX, 1);
        }
    }
}
