//! A Rust value behind an untyped PostgreSQL pointer (`fn_extra`, an aggregate's
//! `internal` state), stored with a tag naming its Rust type. Reading checks the tag, so
//! a pointer that holds another type is refused instead of read as the wrong one.
use std::any::TypeId;

/// The tag first, at offset 0 whatever `T` is.
#[repr(C)]
pub struct Tagged<T> {
    tag: TypeId,
    pub value: T,
}

impl<T: 'static> Tagged<T> {
    pub fn new(value: T) -> Self {
        Tagged {
            tag: TypeId::of::<T>(),
            value,
        }
    }

    /// Whether the `Tagged<_>` at `p` holds a `T`.
    ///
    /// # Safety
    /// `p` points at a live `Tagged<_>` of any type.
    unsafe fn holds(p: *const u8) -> bool {
        // SAFETY: the tag is at offset 0 of every Tagged<_> (repr(C)).
        unsafe { *(p as *const TypeId) == TypeId::of::<T>() }
    }

    /// The value at `p` when it is a `T`, None when it is another type.
    ///
    /// # Safety
    /// `p` points at a live `Tagged<_>` (of any type) that nothing else reads or writes
    /// for `'a`.
    pub unsafe fn at<'a>(p: *mut u8) -> Option<&'a mut T> {
        // SAFETY: the caller's guarantee; the cast happens only when the tag names T.
        unsafe { Self::holds(p).then(|| &mut (*(p as *mut Tagged<T>)).value) }
    }

    /// As [`Tagged::at`], shared.
    ///
    /// # Safety
    /// `p` points at a live `Tagged<_>` (of any type) that nothing writes for `'a`.
    pub unsafe fn at_ref<'a>(p: *const u8) -> Option<&'a T> {
        // SAFETY: as in `at`.
        unsafe { Self::holds(p).then(|| &(*(p as *const Tagged<T>)).value) }
    }
}
