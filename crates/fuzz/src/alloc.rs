//! The counting allocator every binary linking `sigil-fuzz` runs on: `System` underneath, plus
//! per-thread accounting while a fuzz case runs.
//!
//! While a case runs on a thread, every allocation made by that thread is counted: bytes live
//! since the case began, and the peak of that. A single request, or a peak, above the case's
//! bound is refused before `System` sees it: the allocator writes which target and seed asked
//! for it to stderr and returns null, so the process aborts instead of reserving the memory
//! (an input declaring a 4 GiB length never gets 4 GiB). A refused allocation cannot be turned
//! into a panic on stable Rust, so this is the one failure that aborts the test binary.
//!
//! What the panic machinery allocates to report a panic is not counted. Outside a case (and on
//! other threads) the allocator only forwards to `System`, so the rest of
//! a test binary pays one thread-local read per allocation.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;

/// Forwards to `System` and counts what the current fuzz case allocates.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

thread_local! {
    /// `None` outside a case; inside one, the bound in bytes.
    static BOUND: Cell<Option<usize>> = const { Cell::new(None) };
    /// Bytes allocated minus bytes freed by this thread since the case began.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The largest `LIVE` reached in the case.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// The largest single request in the case.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Target and seed of the running case, for the message when an allocation is refused.
    static CASE: Cell<(&'static str, u64)> = const { Cell::new(("", 0)) };
}

/// What a case allocated, read when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The most bytes live at once (allocated during the case and not yet freed).
    pub peak: usize,
    /// The largest single allocation.
    pub largest: usize,
}

/// Starts counting on this thread for a case of `target` with `seed`, refusing beyond `bound`.
pub(crate) fn begin(target: &'static str, seed: u64, bound: usize) {
    LIVE.with(|c| c.set(0));
    PEAK.with(|c| c.set(0));
    LARGEST.with(|c| c.set(0));
    CASE.with(|c| c.set((target, seed)));
    BOUND.with(|c| c.set(Some(bound)));
}

/// Stops counting on this thread and returns what the case allocated.
pub(crate) fn end() -> Usage {
    BOUND.with(|c| c.set(None));
    Usage {
        peak: usize::try_from(PEAK.with(Cell::get)).unwrap_or(0),
        largest: LARGEST.with(Cell::get),
    }
}

/// Counts a request of `size` bytes; false if it would break the bound (and says so on stderr).
fn admit(size: usize) -> bool {
    let Some(bound) = BOUND.try_with(Cell::get).ok().flatten() else {
        return true;
    };
    // A panic being reported (message, backtrace symbolisation) is not the decoder's work.
    if std::thread::panicking() {
        return true;
    }
    let live = LIVE
        .with(Cell::get)
        .saturating_add(isize::try_from(size).unwrap_or(isize::MAX));
    if size > bound || live > isize::try_from(bound).unwrap_or(isize::MAX) {
        // Stop counting first: writing the message may allocate, and must not come back here.
        BOUND.with(|c| c.set(None));
        let (target, seed) = CASE.with(Cell::get);
        let mut line = Line::default();
        let _ = writeln!(
            line,
            "sigil-fuzz: target `{target}` asked for {size} bytes ({live} live), above its bound of {bound}; \
             replay with SIGIL_FUZZ_SEED={seed:#x}"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        return false;
    }
    LIVE.with(|c| c.set(live));
    PEAK.with(|c| c.set(c.get().max(live)));
    LARGEST.with(|c| c.set(c.get().max(size)));
    true
}

fn release(size: usize) {
    if matches!(BOUND.try_with(Cell::get), Ok(Some(_))) {
        LIVE.with(|c| c.set(c.get().saturating_sub(isize::try_from(size).unwrap_or(isize::MAX))));
    }
}

// SAFETY: every method forwards to `System` with the caller's layout and pointer unchanged; the
// bookkeeping around it only reads and writes this thread's const-initialised cells (no
// allocation, no destructor), and refusing a request returns null, which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        release(layout.size());
        // SAFETY: `ptr` came from `System` with this layout (every allocation here does).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !admit(new_size) {
            return std::ptr::null_mut();
        }
        release(layout.size());
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A fixed buffer to format the refusal message in, since the allocator cannot allocate for it.
struct Line {
    bytes: [u8; 512],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self {
            bytes: [0; 512],
            len: 0,
        }
    }
}

impl Line {
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.saturating_add(s.len()).min(self.bytes.len());
        let room = end - self.len;
        if let (Some(dst), Some(src)) = (self.bytes.get_mut(self.len..end), s.as_bytes().get(..room)) {
            dst.copy_from_slice(src);
        }
        self.len = end;
        Ok(())
    }
}
