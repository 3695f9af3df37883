//! Reading arrays of any memory layout in logical (C) order, one chunk at a time.
//!
//! Contiguous arrays are read in place. Any other layout (Fortran order, slices,
//! negative or zero strides) is gathered chunk by chunk into a small reusable
//! buffer, in logical C order, so every kernel sees the same elements in the same
//! order as it would for a contiguous copy, and gives bitwise the same result.

use ndarray::ArrayViewD;

/// A read-only array viewed as a flat sequence in logical C order.
#[derive(Clone)]
pub enum Source<'a, T> {
    /// C-contiguous data, read in place.
    Slice(&'a [T]),
    /// Any other layout, gathered into a buffer chunk by chunk.
    Strided(ArrayViewD<'a, T>),
}

impl<'a, T: Copy> Source<'a, T> {
    /// Wraps a view, taking the zero-copy path when it is C-contiguous.
    pub fn new(view: ArrayViewD<'a, T>) -> Self {
        match view.to_slice() {
            Some(slice) => Source::Slice(slice),
            None => Source::Strided(view),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Source::Slice(s) => s.len(),
            Source::Strided(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `start .. start + len` in logical C order: a sub-slice for
    /// contiguous data, otherwise gathered into `buf`.
    ///
    /// Panics if the range is out of bounds.
    pub fn chunk<'s>(&'s self, start: usize, len: usize, buf: &'s mut Vec<T>) -> &'s [T] {
        match self {
            Source::Slice(s) => &s[start..start + len],
            Source::Strided(v) => {
                gather(v, start, len, buf);
                buf.as_slice()
            }
        }
    }
}

/// Copies logical elements `start .. start + len` of `view` into `buf`.
fn gather<T: Copy>(view: &ArrayViewD<'_, T>, start: usize, len: usize, buf: &mut Vec<T>) {
    assert!(
        start.checked_add(len).is_some_and(|end| end <= view.len()),
        "chunk {start}+{len} out of bounds for {} elements",
        view.len()
    );
    buf.clear();
    if len == 0 {
        return;
    }
    let shape = view.shape();
    let strides = view.strides();
    let ndim = shape.len();
    let base = view.as_ptr();
    if ndim == 0 {
        buf.push(view[[].as_slice()]);
        return;
    }
    // Multi-index of `start` in C order.
    let mut index = vec![0usize; ndim];
    let mut rest = start;
    for axis in (0..ndim).rev() {
        index[axis] = rest % shape[axis];
        rest /= shape[axis];
    }
    let last = ndim - 1;
    let inner_len = shape[last];
    let inner_stride = strides[last];
    let mut remaining = len;
    while remaining > 0 {
        let outer_offset: isize = (0..last).map(|a| index[a] as isize * strides[a]).sum();
        let run = (inner_len - index[last]).min(remaining);
        let first = outer_offset + index[last] as isize * inner_stride;
        for j in 0..run {
            // SAFETY: the multi-index (index[..last], index[last] + j) lies inside
            // the view's shape, and ndarray guarantees that every in-bounds index of
            // a view maps to a valid element through its pointer and strides.
            buf.push(unsafe { *base.offset(first + j as isize * inner_stride) });
        }
        remaining -= run;
        index[last] = 0;
        // Carry into the outer axes.
        let mut axis = last;
        while axis > 0 {
            axis -= 1;
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array, ArrayD, IxDyn};

    fn flat(src: &Source<'_, f64>) -> Vec<f64> {
        let mut buf = Vec::new();
        src.chunk(0, src.len(), &mut buf).to_vec()
    }

    fn logical(view: &ArrayViewD<'_, f64>) -> Vec<f64> {
        view.iter().copied().collect()
    }

    #[test]
    fn contiguous_is_read_in_place() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), (0..6).map(f64::from).collect()).unwrap();
        let src = Source::new(a.view());
        assert!(matches!(src, Source::Slice(_)));
        assert_eq!(flat(&src), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn strided_layouts_follow_logical_order() {
        let a = Array::from_shape_vec((4, 5, 3), (0..60).map(f64::from).collect())
            .unwrap()
            .into_dyn();
        let transposed = a.view().reversed_axes();
        let sliced = a.slice(s![1..4;2, ..;-1, 1..]).into_dyn();
        for view in [transposed, sliced] {
            let src = Source::new(view.clone());
            assert!(matches!(src, Source::Strided(_)));
            assert_eq!(flat(&src), logical(&view));
            // Every sub-range agrees too, whatever the start.
            let all = logical(&view);
            let mut buf = Vec::new();
            for start in 0..all.len() {
                for len in [0, 1, 2, 7] {
                    let len = len.min(all.len() - start);
                    assert_eq!(src.chunk(start, len, &mut buf), &all[start..start + len]);
                }
            }
        }
    }

    #[test]
    fn zero_strides_and_zero_dim() {
        let one = ArrayD::from_elem(IxDyn(&[]), 2.5);
        let broadcast = one.broadcast(IxDyn(&[3, 4])).unwrap();
        assert_eq!(flat(&Source::new(broadcast)), vec![2.5; 12]);
        assert_eq!(flat(&Source::new(one.view())), vec![2.5]);
    }
}
