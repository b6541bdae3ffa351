//! Ctrl-C: the first one asks the running command to stop at its next safe point (the end
//! of a training step, or between two Hessians), which then keeps what is complete and says
//! how to resume. One process-wide flag, so that `demo`, which runs several commands, is
//! covered by one handler.

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

static STOP: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

/// The stop flag, with the Ctrl-C handler installed on first use.
pub fn stop_flag() -> &'static AtomicBool {
    INSTALLED.get_or_init(|| {
        // Failing to install (another handler exists) only loses the graceful stop.
        let _ = ctrlc::set_handler(|| STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    });
    &STOP
}
