//! Splitting elementwise work over threads (std only).

/// Runs `work(start, end)` over `[0, n)` split into `threads` contiguous pieces whose bounds are
/// multiples of `grain`, and returns the maximum of the results. Runs inline when one piece
/// suffices. Every piece is computed exactly as it would be on one thread. A panic in a worker
/// is re-raised on the calling thread.
pub(crate) fn max_over_ranges<F>(n: usize, grain: usize, threads: usize, work: F) -> u32
where
    F: Fn(usize, usize) -> u32 + Sync,
{
    let units = n.div_ceil(grain.max(1));
    let pieces = threads.min(units).max(1);
    if pieces == 1 {
        return work(0, n);
    }
    let per = units.div_ceil(pieces) * grain;
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (1..pieces)
            .filter(|&p| p * per < n)
            .map(|p| scope.spawn(move || work(p * per, ((p + 1) * per).min(n))))
            .collect();
        let first = work(0, per.min(n));
        handles.into_iter().fold(first, |acc, h| {
            acc.max(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        })
    })
}
