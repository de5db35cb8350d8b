! brine for Fortran: checkpoint/restart of Fortran simulations (docs/fortran.md).
!
! Module brine wraps the C API of lib/include/brine.h through ISO_C_BINDING.
! A program opens a context, registers its arrays and scalars once, saves
! every so often and restores on start.  Every function returns 0 or a
! negative BRINE_E* code, as in C; brine_errmsg(ck) then says what failed.
!
! Arrays are registered in place (zero-copy) and in Fortran order: Python
! sees the shape as declared, a(nx, ny) as shape (nx, ny) with order 'F'.
! One generic name, brine_register, takes every supported kind and rank:
! integer(int8..int64), real(real32/real64), complex(real32/real64) and
! logical(c_bool) of rank 0..7 through assumed-rank dummies; default logical
! and character variables go through a small buffer of the module (bool and
! str have another layout in C), copied at each save and restore.
!
! Registered memory must stay valid and must not move until brine_close:
! give registered variables the TARGET attribute (or make them module
! variables or allocatables that are not reallocated).  Allocatables that are
! reallocated between saves are registered with brine_register_allocatable
! and announced with brine_update after every (re)allocation.
!
! The preprocessor (.F90) only instantiates brine_kind.inc once per kind.
module brine
    use, intrinsic :: iso_c_binding
    use, intrinsic :: iso_fortran_env, only: int8, int16, int32, int64, real32, real64
    implicit none
    private

    ! Error codes (brine.h).  The detail is in brine_errmsg().
    integer, parameter, public :: BRINE_OK = 0
    integer, parameter, public :: BRINE_EINVAL = -1
    integer, parameter, public :: BRINE_ENOMEM = -2
    integer, parameter, public :: BRINE_EIO = -3
    integer, parameter, public :: BRINE_ENOSPC = -4
    integer, parameter, public :: BRINE_ENOTFOUND = -5
    integer, parameter, public :: BRINE_ECORRUPT = -6
    integer, parameter, public :: BRINE_EMISMATCH = -7
    integer, parameter, public :: BRINE_EVERSION = -8
    integer, parameter, public :: BRINE_EHDF5 = -9
    integer, parameter, public :: BRINE_EBUSY = -10

    ! brine_options_t%codec
    integer, parameter, public :: BRINE_CODEC_DEFAULT = 0, BRINE_CODEC_ZLIB = 1, &
        BRINE_CODEC_LIBDEFLATE = 2, BRINE_CODEC_ISAL = 3, BRINE_CODEC_NONE = 4
    ! brine_options_t%restore_flags and %async_flags
    integer, parameter, public :: BRINE_RESTORE_PARTIAL = 1
    integer, parameter, public :: BRINE_ASYNC_NOWAIT = 1

    ! brine_dtype values (part of C's ABI) and registration flags.
    integer(c_int), parameter :: DT_BOOL = 0, DT_I8 = 1, DT_I16 = 2, DT_I32 = 3, DT_I64 = 4, &
        DT_F32 = 9, DT_F64 = 10, DT_C64 = 11, DT_C128 = 12
    integer(c_int), parameter :: FORTRAN_ORDER = 1
    integer, parameter :: BRINE_MAX_NDIM = 8
    ! Ranks a resizable (allocatable) registration supports: brine_update allocates them.
    integer, parameter :: ALLOC_MAX_RANK = 7
    ! BRINE_OPTIONS_VERSION of the struct mirrored below.
    integer(c_int), parameter :: OPTIONS_VERSION = 3

    !> A checkpointing context (brine_open .. brine_close).  Copies of it
    !> share the one context: close it once.
    type, public :: brine_t
        private
        type(c_ptr) :: handle = c_null_ptr
        type(state), pointer :: st => null()
        !> The module's own error message ("" when the last failure was C's).
        character(len=:), allocatable :: msg
    end type

    !> Options of brine_open; the defaults are BRINE_OPTIONS_INIT's, and fields
    !> left at them take the BRINE_* environment variables (docs/checkpointing.md).
    type, public :: brine_options_t
        character(len=64) :: prefix = 'ckpt'   !< file names <prefix>-<step>.h5
        integer :: keep_last = 3               !< checkpoints kept; <= 0 keeps all
        integer :: level = 1                   !< deflate level
        integer :: threads = 0                 !< compression threads; 0: OpenMP's default
        integer :: codec = BRINE_CODEC_DEFAULT
        integer :: restore_flags = 0           !< 0 or BRINE_RESTORE_PARTIAL
        integer(int64) :: every_steps = 0      !< brine_maybe_save: save at multiples of it
        real(real64) :: every_seconds = 0      !< ... and after that much wall-clock time
        integer :: keep_every = 0              !< steps multiple of it survive rotation
        logical :: async = .false.             !< brine_maybe_save saves in the background
        integer :: async_flags = 0             !< 0 or BRINE_ASYNC_NOWAIT
        integer(int64) :: staging_max = 0      !< cap of async staging memory (bytes); 0: none
        logical :: use_env = .true.            !< read BRINE_* variables
    end type

    !> The C struct brine_options (brine.h), field for field, with
    !> BRINE_OPTIONS_INIT's values; for programs that call the C API through
    !> their own interfaces.  tests/fortran checks its layout against C's.
    type, bind(c), public :: brine_c_options
        integer(c_int) :: version = OPTIONS_VERSION
        type(c_ptr) :: prefix = c_null_ptr
        integer(c_int) :: keep_last = 3
        integer(c_int) :: level = 1
        integer(c_int) :: threads = 0
        type(c_ptr) :: io = c_null_ptr
        type(c_ptr) :: alloc = c_null_ptr
        integer(c_int) :: codec = BRINE_CODEC_DEFAULT
        integer(c_int) :: restore_flags = 0
        integer(c_int64_t) :: every_steps = 0
        real(c_double) :: every_seconds = 0
        integer(c_int) :: keep_every = 0
        integer(c_int) :: async = 0
        integer(c_int) :: async_flags = 0
        integer(c_size_t) :: staging_max = 0
        integer(c_int) :: use_env = 1
        type(c_funptr) :: clock = c_null_funptr
        type(c_ptr) :: clock_ctx = c_null_ptr
    end type

    ! A default-logical or character variable: C sees buf, the module copies
    ! between it and the user's memory at each save and restore.
    integer, parameter :: SH_LOGICAL = 1, SH_STRING = 2
    type :: shadow
        integer :: kind = 0
        type(c_ptr) :: user = c_null_ptr        ! the variable's memory
        integer(c_size_t) :: n = 0              ! elements (logical) or characters (string)
        character(kind=c_char), pointer :: buf(:) => null()
    end type

    ! An allocatable registered as resizable.  brine keeps the addresses of
    ! data and shape (so each record is allocated on its own and never moves).
    type :: alloc_rec
        character(len=:), allocatable :: name
        integer(c_int) :: dtype = 0
        integer :: ndim = 0
        logical :: c_order = .false.
        integer(c_size_t) :: elsize = 0
        type(c_ptr) :: data = c_null_ptr                   ! what brine reads (*data)
        integer(c_size_t) :: shape(BRINE_MAX_NDIM) = 0     ! brine's shape (reversed for c_order)
        type(c_ptr) :: user = c_null_ptr                   ! the allocatable's memory at brine_update
        integer(c_size_t) :: ushape(BRINE_MAX_NDIM) = 0    ! and its shape as brine sees it
        type(c_ptr) :: restored = c_null_ptr               ! memory resize_cb allocated
        logical :: pending = .false.                       ! restored, not yet taken by brine_update
    contains
        procedure :: take => rec_take
        procedure :: adopt => rec_adopt
        procedure :: fortran_shape => rec_fortran_shape
        procedure :: drop_restored => rec_drop_restored
    end type

    type :: alloc_ptr
        type(alloc_rec), pointer :: p => null()
    end type

    type :: state
        type(shadow), allocatable :: shadows(:)
        integer :: nshadows = 0
        type(alloc_ptr), allocatable :: allocs(:)
        integer :: nallocs = 0
    end type

    ! Address given for zero-size arrays (brine wants a non-NULL pointer, reads no byte).
    integer(c_int8_t), target, save :: empty_target(1) = 0

    public :: brine_open_via, c_open_comm
    public :: brine_open, brine_close, brine_register, brine_register_allocatable, brine_update
    public :: brine_save, brine_save_async, brine_wait, brine_maybe_save
    public :: brine_install_signals, brine_should_exit, brine_restore, brine_restore_report
    public :: brine_set_attr, brine_errmsg, brine_errstr, brine_version, brine_is_open

    !> rc = brine_register(ck, name, a [, c_order]): registers variable a
    !> (any supported kind, rank 0..7, contiguous; or a character scalar).
    interface brine_register
        module procedure register_i8, register_i16, register_i32, register_i64
        module procedure register_r32, register_r64, register_c32, register_c64, register_lb
        module procedure register_logical, register_string
    end interface

    !> rc = brine_register_allocatable(ck, name, a [, c_order]): registers an
    !> allocatable (rank 1..7) whose size may change; see brine_update.
    interface brine_register_allocatable
        module procedure register_alloc_i8, register_alloc_i16, register_alloc_i32, register_alloc_i64
        module procedure register_alloc_r32, register_alloc_r64, register_alloc_c32, register_alloc_c64
        module procedure register_alloc_lb
    end interface

    !> rc = brine_update(ck, name, a): after a was (re)allocated, and after
    !> brine_restore, makes brine and allocatable a agree (docs/fortran.md).
    interface brine_update
        module procedure update_i8, update_i16, update_i32, update_i64
        module procedure update_r32, update_r64, update_c32, update_c64, update_lb
    end interface

    !> Steps are integer(int64) or default integer.
    interface brine_save
        module procedure save_i64, save_i32
    end interface
    interface brine_save_async
        module procedure save_async_i64, save_async_i32
    end interface
    interface brine_maybe_save
        module procedure maybe_save_i64, maybe_save_i32
    end interface

    !> rc = brine_set_attr(ck, name, value): metadata (integer, real(real64) or character).
    interface brine_set_attr
        module procedure set_attr_i32, set_attr_i64, set_attr_r64, set_attr_str
    end interface

    !> A C opener with brine_open's arguments and a communicator
    !> (brine_open_mpi_f, bindings/fortran/brine_mpi_f.c), for brine_open_via.
    abstract interface
        integer(c_int) function c_open_comm(out, dir, comm, opts) bind(c)
            import :: c_int, c_ptr, brine_c_options
            type(c_ptr), intent(out) :: out
            type(c_ptr), value :: dir
            integer(c_int), value :: comm
            type(brine_c_options), intent(in) :: opts
        end function
    end interface

    ! The C API, all in one place.
    interface
        integer(c_int) function c_open(out, dir, opts) bind(c, name='brine_open')
            import :: c_int, c_ptr, brine_c_options
            type(c_ptr), intent(out) :: out
            type(c_ptr), value :: dir
            type(brine_c_options), intent(in) :: opts
        end function
        type(c_ptr) function c_open_errmsg() bind(c, name='brine_open_errmsg')
            import :: c_ptr
        end function
        integer(c_int) function c_close(b) bind(c, name='brine_close')
            import :: c_int, c_ptr
            type(c_ptr), value :: b
        end function
        integer(c_int) function c_register(b, name, dtype, data, ndim, shape, flags) &
                bind(c, name='brine_register')
            import :: c_int, c_ptr, c_char, c_size_t
            type(c_ptr), value :: b
            character(kind=c_char), dimension(*), intent(in) :: name
            integer(c_int), value :: dtype
            type(c_ptr), value :: data
            integer(c_int), value :: ndim
            integer(c_size_t), dimension(*), intent(in) :: shape
            integer(c_int), value :: flags
        end function
        integer(c_int) function c_register_resizable(b, name, dtype, data, ndim, shape, flags, &
                resize, ctx) bind(c, name='brine_register_resizable')
            import :: c_int, c_ptr, c_char, c_funptr
            type(c_ptr), value :: b
            character(kind=c_char), dimension(*), intent(in) :: name
            integer(c_int), value :: dtype
            type(c_ptr), value :: data
            integer(c_int), value :: ndim
            type(c_ptr), value :: shape
            integer(c_int), value :: flags
            type(c_funptr), value :: resize
            type(c_ptr), value :: ctx
        end function
        integer(c_int) function c_register_string(b, name, buf, capacity) &
                bind(c, name='brine_register_string')
            import :: c_int, c_ptr, c_char, c_size_t
            type(c_ptr), value :: b
            character(kind=c_char), dimension(*), intent(in) :: name
            type(c_ptr), value :: buf
            integer(c_size_t), value :: capacity
        end function
        integer(c_int) function c_save(b, step) bind(c, name='brine_save')
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), value :: b
            integer(c_int64_t), value :: step
        end function
        integer(c_int) function c_save_async(b, step) bind(c, name='brine_save_async')
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), value :: b
            integer(c_int64_t), value :: step
        end function
        integer(c_int) function c_maybe_save(b, step) bind(c, name='brine_maybe_save')
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), value :: b
            integer(c_int64_t), value :: step
        end function
        integer(c_int) function c_wait(b) bind(c, name='brine_wait')
            import :: c_int, c_ptr
            type(c_ptr), value :: b
        end function
        integer(c_int) function c_install_signals(b, signals, n) bind(c, name='brine_install_signals')
            import :: c_int, c_ptr
            type(c_ptr), value :: b
            type(c_ptr), value :: signals
            integer(c_int), value :: n
        end function
        integer(c_int) function c_should_exit(b) bind(c, name='brine_should_exit')
            import :: c_int, c_ptr
            type(c_ptr), value :: b
        end function
        integer(c_int) function c_restore(b, step) bind(c, name='brine_restore')
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), value :: b
            integer(c_int64_t), intent(out) :: step
        end function
        type(c_ptr) function c_restore_report(b) bind(c, name='brine_restore_report')
            import :: c_ptr
            type(c_ptr), value :: b
        end function
        integer(c_int) function c_set_attr_int(b, name, v) bind(c, name='brine_set_attr_int')
            import :: c_int, c_ptr, c_char, c_int64_t
            type(c_ptr), value :: b
            character(kind=c_char), dimension(*), intent(in) :: name
            integer(c_int64_t), value :: v
        end function
        integer(c_int) function c_set_attr_double(b, name, v) bind(c, name='brine_set_attr_double')
            import :: c_int, c_ptr, c_char, c_double
            type(c_ptr), value :: b
            character(kind=c_char), dimension(*), intent(in) :: name
            real(c_double), value :: v
        end function
        integer(c_int) function c_set_attr_string(b, name, v) bind(c, name='brine_set_attr_string')
            import :: c_int, c_ptr, c_char
            type(c_ptr), value :: b
            character(kind=c_char), dimension(*), intent(in) :: name
            character(kind=c_char), dimension(*), intent(in) :: v
        end function
        type(c_ptr) function c_errmsg(b) bind(c, name='brine_errmsg')
            import :: c_ptr
            type(c_ptr), value :: b
        end function
        type(c_ptr) function c_errstr(code) bind(c, name='brine_errstr')
            import :: c_ptr, c_int
            integer(c_int), value :: code
        end function
        type(c_ptr) function c_version() bind(c, name='brine_version')
            import :: c_ptr
        end function
        integer(c_size_t) function c_dtype_size(dtype) bind(c, name='brine_dtype_size')
            import :: c_size_t, c_int
            integer(c_int), value :: dtype
        end function
        integer(c_size_t) function c_strlen(s) bind(c, name='strlen')
            import :: c_size_t, c_ptr
            type(c_ptr), value :: s
        end function
        type(c_ptr) function c_malloc(n) bind(c, name='malloc')
            import :: c_ptr, c_size_t
            integer(c_size_t), value :: n
        end function
        subroutine c_free(p) bind(c, name='free')
            import :: c_ptr
            type(c_ptr), value :: p
        end subroutine
        type(c_ptr) function c_memcpy(dst, src, n) bind(c, name='memcpy')
            import :: c_ptr, c_size_t
            type(c_ptr), value :: dst, src
            integer(c_size_t), value :: n
        end function
    end interface

contains

#define FTYPE integer(int8)
#define SFX i8
#define DTYPE DT_I8
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE integer(int16)
#define SFX i16
#define DTYPE DT_I16
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE integer(int32)
#define SFX i32
#define DTYPE DT_I32
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE integer(int64)
#define SFX i64
#define DTYPE DT_I64
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE real(real32)
#define SFX r32
#define DTYPE DT_F32
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE real(real64)
#define SFX r64
#define DTYPE DT_F64
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE complex(real32)
#define SFX c32
#define DTYPE DT_C64
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE complex(real64)
#define SFX c64
#define DTYPE DT_C128
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE
#define FTYPE logical(c_bool)
#define SFX lb
#define DTYPE DT_BOOL
#include "brine_kind.inc"
#undef FTYPE
#undef SFX
#undef DTYPE

    ! ---------------------------------------------------------------- strings

    !> s as a NUL-terminated C string (trailing blanks dropped).
    pure function c_str(s) result(c)
        character(len=*), intent(in) :: s
        character(kind=c_char, len=:), allocatable :: c
        c = trim(s) // c_null_char
    end function

    !> A C string as a Fortran string ("" for NULL).
    function f_str(p) result(s)
        type(c_ptr), intent(in) :: p
        character(len=:), allocatable :: s
        character(kind=c_char), pointer :: chars(:)
        integer :: i, n
        if (.not. c_associated(p)) then
            s = ''
            return
        end if
        n = int(c_strlen(p))
        call c_f_pointer(p, chars, [n])
        allocate(character(len=n) :: s)
        do i = 1, n
            s(i:i) = chars(i)
        end do
    end function

    !> An integer as text, for messages.
    pure function itoa(i) result(s)
        integer(int64), intent(in) :: i
        character(len=:), allocatable :: s
        character(len=24) :: buf
        write (buf, '(i0)') i
        s = trim(buf)
    end function

    !> "(2, 3)": a shape as Python prints it.
    function shape_text(s) result(t)
        integer(c_size_t), intent(in) :: s(:)
        character(len=:), allocatable :: t
        integer :: d
        t = '('
        do d = 1, size(s)
            t = t // itoa(int(s(d), int64))
            if (d < size(s) .or. size(s) == 1) t = t // ','
            if (d < size(s)) t = t // ' '
        end do
        t = t // ')'
    end function

    !> Forgets the module's message.  Deallocated rather than set to '', so a
    !> context that never failed holds no memory outside brine_open..brine_close.
    subroutine clear_msg(ck)
        type(brine_t), intent(inout) :: ck
        if (allocated(ck%msg)) deallocate(ck%msg)
    end subroutine

    !> Starts a call: clears the module's message; EINVAL unless ck is open.
    function begin(ck, what) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: what
        integer :: rc
        call clear_msg(ck)
        rc = BRINE_OK
        if (.not. c_associated(ck%handle)) then
            ck%msg = what // ': the context is not open (brine_open failed or was not called)'
            rc = BRINE_EINVAL
        end if
    end function

    ! ---------------------------------------------------------------- context

    !> Opens a context checkpointing into directory dir (created when
    !> missing; absent: $BRINE_DIR).  Returns 0 or a BRINE_E* code; on
    !> failure brine_errmsg(ck) says why.  opts absent: the defaults.
    function brine_open(ck, dir, opts) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in), optional :: dir
        type(brine_options_t), intent(in), optional :: opts
        integer :: rc
        rc = brine_open_via(ck, dir, opts)
    end function

    !> brine_open, or with opener (a C function of interface c_open_comm)
    !> and comm (a Fortran MPI communicator handle) that instead of brine_open:
    !> how module brine_mpi's brine_open_mpi reaches the context's private
    !> parts.  Programs call brine_open or brine_open_mpi, not this.
    function brine_open_via(ck, dir, opts, opener, comm) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in), optional :: dir
        type(brine_options_t), intent(in), optional :: opts
        procedure(c_open_comm), optional :: opener
        integer, intent(in), optional :: comm
        integer :: rc
        type(brine_c_options) :: co
        character(kind=c_char, len=:), allocatable, target :: cdir, cprefix
        type(c_ptr) :: pdir
        call clear_msg(ck)
        if (c_associated(ck%handle)) then
            ck%msg = 'brine_open: the context is already open: brine_close it first'
            rc = BRINE_EINVAL
            return
        end if
        pdir = c_null_ptr
        if (present(dir)) then
            cdir = c_str(dir)
            pdir = c_loc(cdir)
        end if
        if (present(opts)) then
            cprefix = c_str(opts%prefix)
            co%prefix = c_loc(cprefix)
            co%keep_last = opts%keep_last
            co%level = opts%level
            co%threads = opts%threads
            co%codec = opts%codec
            co%restore_flags = opts%restore_flags
            co%every_steps = opts%every_steps
            co%every_seconds = opts%every_seconds
            co%keep_every = opts%keep_every
            co%async = merge(1, 0, opts%async)
            co%async_flags = opts%async_flags
            co%staging_max = opts%staging_max
            co%use_env = merge(1, 0, opts%use_env)
        end if
        if (present(opener) .and. present(comm)) then
            rc = opener(ck%handle, pdir, int(comm, c_int), co)
        else
            rc = c_open(ck%handle, pdir, co)
        end if
        if (rc /= 0) then
            ck%handle = c_null_ptr
            ck%msg = f_str(c_open_errmsg())
            return
        end if
        allocate(ck%st)
        allocate(ck%st%shadows(4), ck%st%allocs(4))
    end function

    !> Closes the context: waits for a save in flight, frees brine's memory
    !> and the module's buffers; registered memory is the caller's.  Returns
    !> 0 or the failure of a background save nobody returned yet.  A closed
    !> (or never opened) ck is a no-op.
    function brine_close(ck) result(rc)
        type(brine_t), intent(inout) :: ck
        integer :: rc
        integer :: k
        call clear_msg(ck)
        rc = BRINE_OK
        if (.not. c_associated(ck%handle)) return
        rc = c_close(ck%handle)
        if (rc /= 0) ck%msg = f_str(c_open_errmsg())
        ck%handle = c_null_ptr
        do k = 1, ck%st%nshadows
            deallocate(ck%st%shadows(k)%buf)
        end do
        do k = 1, ck%st%nallocs
            call ck%st%allocs(k)%p%drop_restored()
            deallocate(ck%st%allocs(k)%p)
        end do
        deallocate(ck%st)
    end function

    !> .true. between a successful brine_open and brine_close.
    logical function brine_is_open(ck)
        type(brine_t), intent(in) :: ck
        brine_is_open = c_associated(ck%handle)
    end function

    ! ----------------------------------------------------------- registering

    !> Registers contiguous array or scalar a in place, in Fortran order
    !> (or, with c_order, as the C array of the reversed shape).
    function register_array(ck, name, a, dtype, c_order) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        type(*), dimension(..), target, intent(inout) :: a   ! brine_restore writes it
        integer(c_int), intent(in) :: dtype
        logical, intent(in), optional :: c_order
        integer :: rc
        integer(c_size_t) :: shp(max(1, rank(a)))
        integer(c_int) :: flags
        type(c_ptr) :: data
        rc = begin(ck, 'brine_register')
        if (rc /= 0) return
        if (.not. is_contiguous(a)) then
            ck%msg = "brine_register: variable '" // trim(name) // "' is not contiguous (an array " // &
                "section with a stride?): brine keeps a pointer to the memory it saves and never " // &
                "copies silently; register a whole array, or copy the section into a contiguous " // &
                "array that lives until brine_close"
            rc = BRINE_EINVAL
            return
        end if
        shp = 0
        if (rank(a) > 0) shp(1:rank(a)) = shape(a, kind=c_size_t)
        call c_layout(shp, rank(a), c_order, flags)
        data = c_loc(empty_target)
        if (size(a) > 0) data = c_loc(a)
        rc = c_register(ck%handle, c_str(name), dtype, data, int(rank(a), c_int), shp, flags)
    end function

    !> The shape and flags brine sees: Fortran order, or the reversed C view.
    subroutine c_layout(shp, ndim, c_order, flags)
        integer(c_size_t), intent(inout) :: shp(:)
        integer, intent(in) :: ndim
        logical, intent(in), optional :: c_order
        integer(c_int), intent(out) :: flags
        flags = FORTRAN_ORDER
        if (present(c_order)) then
            if (c_order) then
                flags = 0
                shp(1:ndim) = shp(ndim:1:-1)
            end if
        end if
    end subroutine

    !> A new module buffer of n bytes for a default-logical or character variable.
    function add_shadow(ck, kind, user, n, nbuf) result(k)
        type(brine_t), intent(inout) :: ck
        integer, intent(in) :: kind
        type(c_ptr), intent(in) :: user
        integer(c_size_t), intent(in) :: n, nbuf
        integer :: k
        type(shadow), allocatable :: grown(:)
        if (ck%st%nshadows == size(ck%st%shadows)) then
            allocate(grown(2 * size(ck%st%shadows)))
            grown(1:ck%st%nshadows) = ck%st%shadows(1:ck%st%nshadows)
            call move_alloc(grown, ck%st%shadows)
        end if
        k = ck%st%nshadows + 1
        ck%st%shadows(k)%kind = kind
        ck%st%shadows(k)%user = user
        ck%st%shadows(k)%n = n
        allocate(ck%st%shadows(k)%buf(max(nbuf, 1_c_size_t)))
        ck%st%shadows(k)%buf = c_null_char
    end function

    !> Keeps buffer k when C accepted its registration, else frees it.
    subroutine settle_shadow(ck, k, rc)
        type(brine_t), intent(inout) :: ck
        integer, intent(in) :: k, rc
        if (rc == 0) then
            ck%st%nshadows = k
        else
            deallocate(ck%st%shadows(k)%buf)
        end if
    end subroutine

    !> Default logical (four bytes in gfortran) is stored as bool through a
    !> byte buffer of the module, copied at each save and restore.
    function register_logical(ck, name, a, c_order) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        logical, dimension(..), target, intent(inout) :: a
        logical, intent(in), optional :: c_order
        integer :: rc, k
        integer(c_size_t) :: shp(max(1, rank(a)))
        integer(c_int) :: flags
        rc = begin(ck, 'brine_register')
        if (rc /= 0) return
        if (.not. is_contiguous(a)) then
            ck%msg = "brine_register: variable '" // trim(name) // "' is not contiguous (an array " // &
                "section with a stride?): register a whole array"
            rc = BRINE_EINVAL
            return
        end if
        shp = 0
        if (rank(a) > 0) shp(1:rank(a)) = shape(a, kind=c_size_t)
        call c_layout(shp, rank(a), c_order, flags)
        k = add_shadow(ck, SH_LOGICAL, c_loc(empty_target), int(size(a), c_size_t), &
                       int(size(a), c_size_t))
        if (size(a) > 0) ck%st%shadows(k)%user = c_loc(a)
        rc = c_register(ck%handle, c_str(name), DT_BOOL, c_loc(ck%st%shadows(k)%buf), &
                        int(rank(a), c_int), shp, flags)
        call settle_shadow(ck, k, rc)
    end function

    !> A character variable is saved as a Python str: its text without the
    !> trailing blanks.  It restores a string of at most len(s) bytes,
    !> blank-padded.
    function register_string(ck, name, s) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        character(len=*), target, intent(inout) :: s
        integer :: rc, k
        rc = begin(ck, 'brine_register')
        if (rc /= 0) return
        k = add_shadow(ck, SH_STRING, c_loc(empty_target), int(len(s), c_size_t), &
                       int(len(s), c_size_t) + 1)
        if (len(s) > 0) ck%st%shadows(k)%user = c_loc(s)
        rc = c_register_string(ck%handle, c_str(name), c_loc(ck%st%shadows(k)%buf), &
                               int(len(s), c_size_t) + 1)
        call settle_shadow(ck, k, rc)
    end function

    !> Copies the default-logical and character variables into their buffers.
    subroutine shadows_out(st)
        type(state), intent(inout) :: st
        integer :: k
        integer(c_size_t) :: i, n
        logical, pointer :: lp(:)
        character(kind=c_char), pointer :: cp(:)
        do k = 1, st%nshadows
            associate (sh => st%shadows(k))
                if (sh%n == 0) cycle
                if (sh%kind == SH_LOGICAL) then
                    call c_f_pointer(sh%user, lp, [sh%n])
                    sh%buf = merge(achar(1, c_char), achar(0, c_char), lp)
                else
                    call c_f_pointer(sh%user, cp, [sh%n])
                    n = sh%n
                    do while (n > 0)
                        if (cp(n) /= ' ') exit
                        n = n - 1
                    end do
                    do i = 1, n
                        sh%buf(i) = cp(i)
                    end do
                    sh%buf(n + 1) = c_null_char
                end if
            end associate
        end do
    end subroutine

    !> Copies the buffers back into the variables (after a restore).
    subroutine shadows_in(st)
        type(state), intent(inout) :: st
        integer :: k
        integer(c_size_t) :: i
        logical, pointer :: lp(:)
        character(kind=c_char), pointer :: cp(:)
        logical :: ended
        do k = 1, st%nshadows
            associate (sh => st%shadows(k))
                if (sh%n == 0) cycle
                if (sh%kind == SH_LOGICAL) then
                    call c_f_pointer(sh%user, lp, [sh%n])
                    lp = sh%buf(1:sh%n) /= achar(0, c_char)
                else
                    call c_f_pointer(sh%user, cp, [sh%n])
                    ended = .false.
                    do i = 1, sh%n
                        if (sh%buf(i) == c_null_char) ended = .true.
                        if (ended) then
                            cp(i) = ' '
                        else
                            cp(i) = sh%buf(i)
                        end if
                    end do
                end if
            end associate
        end do
    end subroutine

    ! ------------------------------------------------------------ allocatables

    !> Registers an allocatable through brine_register_resizable: brine reads
    !> the record's data and shape at each save; resize_cb sizes it on restore.
    function register_resizable(ck, name, dtype, ndim, data, fshape, c_order) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        integer(c_int), intent(in) :: dtype
        integer, intent(in) :: ndim
        type(c_ptr), intent(in) :: data
        integer(c_size_t), intent(in) :: fshape(:)
        logical, intent(in), optional :: c_order
        integer :: rc
        type(alloc_rec), pointer :: rec
        type(alloc_ptr), allocatable :: grown(:)
        integer(c_int) :: flags
        integer(c_size_t) :: shp(BRINE_MAX_NDIM)
        rc = begin(ck, 'brine_register_allocatable')
        if (rc /= 0) return
        if (ndim < 1 .or. ndim > ALLOC_MAX_RANK) then
            ck%msg = "brine_register_allocatable: variable '" // trim(name) // "' has rank " // &
                itoa(int(ndim, int64)) // ": allocatables of rank 1 to 7 are supported"
            rc = BRINE_EINVAL
            return
        end if
        allocate(rec)
        rec%name = trim(name)
        rec%dtype = dtype
        rec%ndim = ndim
        rec%elsize = c_dtype_size(dtype)
        shp = 0
        call c_layout(shp, ndim, c_order, flags)
        rec%c_order = flags == 0
        call rec%take(data, fshape)
        rc = c_register_resizable(ck%handle, c_str(name), dtype, c_loc(rec%data), int(ndim, c_int), &
                                  c_loc(rec%shape), flags, c_funloc(resize_cb), c_loc(rec))
        if (rc /= 0) then
            deallocate(rec)
            return
        end if
        if (ck%st%nallocs == size(ck%st%allocs)) then
            allocate(grown(2 * size(ck%st%allocs)))
            grown(1:ck%st%nallocs) = ck%st%allocs(1:ck%st%nallocs)
            call move_alloc(grown, ck%st%allocs)
        end if
        ck%st%nallocs = ck%st%nallocs + 1
        ck%st%allocs(ck%st%nallocs)%p => rec
    end function

    !> brine_resize_fn of allocatables: memory of the module for a restored
    !> array of another size, which brine_update then moves into the allocatable.
    function resize_cb(ctx, name, old, nbytes) result(p) bind(c)
        type(c_ptr), value :: ctx, name, old
        integer(c_size_t), value :: nbytes
        type(c_ptr) :: p
        type(alloc_rec), pointer :: rec
        call c_f_pointer(ctx, rec)
        if (c_associated(name)) continue   ! unused: ctx names the variable
        p = c_malloc(max(nbytes, 1_c_size_t))
        if (.not. c_associated(p)) return
        ! brine drops old once it has other memory: free it when it was ours.
        if (c_associated(rec%restored)) then
            if (c_associated(old, rec%restored)) call c_free(old)
        end if
        rec%restored = p
    end function

    !> The allocatable named name, registered with this kind and rank.
    function find_alloc(ck, name, dtype, ndim, rec) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        integer(c_int), intent(in) :: dtype
        integer, intent(in) :: ndim
        type(alloc_rec), pointer, intent(out) :: rec
        integer :: rc, k
        rec => null()
        rc = begin(ck, 'brine_update')
        if (rc /= 0) return
        do k = 1, ck%st%nallocs
            if (ck%st%allocs(k)%p%name == trim(name)) then
                rec => ck%st%allocs(k)%p
                exit
            end if
        end do
        if (.not. associated(rec)) then
            ck%msg = "brine_update: no allocatable '" // trim(name) // "' is registered " // &
                "(brine_register_allocatable)"
            rc = BRINE_EINVAL
        else if (rec%dtype /= dtype .or. rec%ndim /= ndim) then
            ck%msg = "brine_update: allocatable '" // trim(name) // "' was registered as " // &
                f_str(c_dtype_name(rec%dtype)) // " of rank " // itoa(int(rec%ndim, int64)) // &
                ", brine_update got " // f_str(c_dtype_name(dtype)) // " of rank " // &
                itoa(int(ndim, int64))
            rec => null()
            rc = BRINE_EINVAL
        end if
    end function

    !> numpy's dtype string of a brine dtype ("<f8"), for messages.
    type(c_ptr) function c_dtype_name(dtype)
        integer(c_int), intent(in) :: dtype
        interface
            type(c_ptr) function dtype_str(d) bind(c, name='brine_dtype_str')
                import :: c_ptr, c_int
                integer(c_int), value :: d
            end function
        end interface
        c_dtype_name = dtype_str(dtype)
    end function

    !> brine now reads the allocatable at data with Fortran shape fshape.
    subroutine rec_take(rec, data, fshape)
        class(alloc_rec), intent(inout) :: rec
        type(c_ptr), intent(in) :: data
        integer(c_size_t), intent(in) :: fshape(:)
        call rec%drop_restored()
        rec%shape = 0
        rec%shape(1:rec%ndim) = fshape(1:rec%ndim)
        if (rec%c_order) rec%shape(1:rec%ndim) = fshape(rec%ndim:1:-1)
        rec%data = data
        rec%user = data
        rec%ushape = rec%shape
        rec%pending = .false.
    end subroutine

    !> The restored shape, in Fortran order (what the allocatable gets).
    function rec_fortran_shape(rec) result(s)
        class(alloc_rec), intent(in) :: rec
        integer(c_size_t) :: s(BRINE_MAX_NDIM)
        s = 0
        s(1:rec%ndim) = rec%shape(1:rec%ndim)
        if (rec%c_order) s(1:rec%ndim) = rec%shape(rec%ndim:1:-1)
    end function

    !> Moves the restored data into the newly allocated array at data.
    subroutine rec_adopt(rec, data)
        class(alloc_rec), intent(inout) :: rec
        type(c_ptr), intent(in) :: data
        integer(c_size_t) :: nbytes
        type(c_ptr) :: ignored
        nbytes = product(rec%shape(1:rec%ndim)) * rec%elsize
        if (nbytes > 0) ignored = c_memcpy(data, rec%restored, nbytes)
        call rec%take(data, rec%fortran_shape())
    end subroutine

    subroutine rec_drop_restored(rec)
        class(alloc_rec), intent(inout) :: rec
        if (c_associated(rec%restored)) call c_free(rec%restored)
        rec%restored = c_null_ptr
    end subroutine

    !> After brine_restore: each allocatable whose memory or shape brine
    !> changed waits for brine_update (pending); on failure brine's view goes
    !> back to the allocatable as it is.
    subroutine allocs_after_restore(st, ok)
        type(state), intent(inout) :: st
        logical, intent(in) :: ok
        integer :: k
        integer(c_size_t) :: nbytes
        type(c_ptr) :: ignored
        do k = 1, st%nallocs
            associate (rec => st%allocs(k)%p)
                if (.not. ok) then
                    rec%shape = rec%ushape
                    rec%data = rec%user
                    call rec%drop_restored()
                    cycle
                end if
                if (c_associated(rec%data) .and. .not. c_associated(rec%data, rec%user)) then
                    rec%pending = .true.  ! new memory from resize_cb, now rec%restored
                else if (any(rec%shape /= rec%ushape)) then
                    ! Same bytes, another shape: the data moves out before
                    ! brine_update reallocates the allocatable.
                    nbytes = product(rec%shape(1:rec%ndim)) * rec%elsize
                    call rec%drop_restored()
                    rec%restored = c_malloc(max(nbytes, 1_c_size_t))
                    if (nbytes > 0) ignored = c_memcpy(rec%restored, rec%data, nbytes)
                    rec%data = rec%restored
                    rec%pending = .true.
                end if
            end associate
        end do
    end subroutine

    !> Before a save: every variable's current value is what brine reads.
    function before_save(ck, what) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: what
        integer :: rc, k
        integer(c_size_t) :: fs(BRINE_MAX_NDIM)
        rc = begin(ck, what)
        if (rc /= 0) return
        do k = 1, ck%st%nallocs
            if (ck%st%allocs(k)%p%pending) then
                fs = ck%st%allocs(k)%p%fortran_shape()
                ck%msg = what // ": allocatable '" // ck%st%allocs(k)%p%name // "' was restored " // &
                    "with shape " // shape_text(fs(1:ck%st%allocs(k)%p%ndim)) // ": call " // &
                    "brine_update(ck, '" // ck%st%allocs(k)%p%name // "', array) first"
                rc = BRINE_EINVAL
                return
            end if
        end do
        call shadows_out(ck%st)
    end function

    ! ------------------------------------------------------------ save, restore

    !> Writes a checkpoint of every registered variable for step, durably
    !> (brine_save in brine.h).
    function save_i64(ck, step) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(int64), intent(in) :: step
        integer :: rc
        rc = before_save(ck, 'brine_save')
        if (rc == 0) rc = c_save(ck%handle, step)
    end function

    function save_i32(ck, step) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(int32), intent(in) :: step
        integer :: rc
        rc = save_i64(ck, int(step, int64))
    end function

    !> Copies the state and writes the checkpoint in the background
    !> (brine_save_async); brine_wait returns its outcome.
    function save_async_i64(ck, step) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(int64), intent(in) :: step
        integer :: rc
        rc = before_save(ck, 'brine_save_async')
        if (rc == 0) rc = c_save_async(ck%handle, step)
    end function

    function save_async_i32(ck, step) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(int32), intent(in) :: step
        integer :: rc
        rc = save_async_i64(ck, int(step, int64))
    end function

    !> Waits for the save in flight; returns its failure, if any (once).
    function brine_wait(ck) result(rc)
        type(brine_t), intent(inout) :: ck
        integer :: rc
        rc = begin(ck, 'brine_wait')
        if (rc == 0) rc = c_wait(ck%handle)
    end function

    !> Once per time step: saves when the options' policy or a signal says
    !> so.  Returns 1 when it saved, 0 when not, or a negative code.  Default
    !> logical and character variables are copied at each call.
    function maybe_save_i64(ck, step) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(int64), intent(in) :: step
        integer :: rc
        rc = before_save(ck, 'brine_maybe_save')
        if (rc == 0) rc = c_maybe_save(ck%handle, step)
    end function

    function maybe_save_i32(ck, step) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(int32), intent(in) :: step
        integer :: rc
        rc = maybe_save_i64(ck, int(step, int64))
    end function

    !> Makes signals (default SIGTERM and SIGUSR1) trigger a save at the next
    !> brine_maybe_save; brine_should_exit then turns .true.
    function brine_install_signals(ck, signals) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(c_int), intent(in), optional :: signals(:)
        integer :: rc
        integer(c_int), allocatable, target :: list(:)   ! contiguous, whatever signals is
        rc = begin(ck, 'brine_install_signals')
        if (rc /= 0) return
        if (present(signals)) then
            if (size(signals) == 0) then
                ck%msg = 'brine_install_signals: the list of signals is empty'
                rc = BRINE_EINVAL
                return
            end if
            list = signals
            rc = c_install_signals(ck%handle, c_loc(list), int(size(list), c_int))
        else
            rc = c_install_signals(ck%handle, c_null_ptr, 0_c_int)
        end if
    end function

    !> .true. once an installed signal arrived and its checkpoint is published.
    logical function brine_should_exit(ck)
        type(brine_t), intent(in) :: ck
        brine_should_exit = .false.
        if (c_associated(ck%handle)) brine_should_exit = c_should_exit(ck%handle) /= 0
    end function

    !> Loads the newest checkpoint that verifies into the registered
    !> variables; step (optional) receives its step.  BRINE_ENOTFOUND when
    !> the directory has none.  Allocatables restored with another shape
    !> take it at brine_update.
    function brine_restore(ck, step) result(rc)
        type(brine_t), intent(inout) :: ck
        integer(int64), intent(out), optional :: step
        integer :: rc
        integer(c_int64_t) :: got
        got = -1
        rc = begin(ck, 'brine_restore')
        if (rc == 0) then
            ! Buffers hold the current values, so what a partial restore
            ! leaves alone comes back unchanged.
            call shadows_out(ck%st)
            rc = c_restore(ck%handle, got)
            if (rc == 0) call shadows_in(ck%st)
            call allocs_after_restore(ck%st, rc == 0)
        end if
        if (present(step)) step = got
    end function

    !> What the last brine_restore under BRINE_RESTORE_PARTIAL left out.
    function brine_restore_report(ck) result(report)
        type(brine_t), intent(in) :: ck
        character(len=:), allocatable :: report
        report = ''
        if (c_associated(ck%handle)) report = f_str(c_restore_report(ck%handle))
    end function

    ! ----------------------------------------------------------------- metadata

    function set_attr_i64(ck, name, value) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        integer(int64), intent(in) :: value
        integer :: rc
        rc = begin(ck, 'brine_set_attr')
        if (rc == 0) rc = c_set_attr_int(ck%handle, c_str(name), value)
    end function

    function set_attr_i32(ck, name, value) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        integer(int32), intent(in) :: value
        integer :: rc
        rc = set_attr_i64(ck, name, int(value, int64))
    end function

    function set_attr_r64(ck, name, value) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        real(real64), intent(in) :: value
        integer :: rc
        rc = begin(ck, 'brine_set_attr')
        if (rc == 0) rc = c_set_attr_double(ck%handle, c_str(name), value)
    end function

    !> A character value is stored without its trailing blanks.
    function set_attr_str(ck, name, value) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: name
        character(len=*), intent(in) :: value
        integer :: rc
        rc = begin(ck, 'brine_set_attr')
        if (rc == 0) rc = c_set_attr_string(ck%handle, c_str(name), c_str(value))
    end function

    ! ------------------------------------------------------------------- errors

    !> The precise cause of the last failure of a call on ck ("" when none),
    !> also after a failed brine_open or brine_close.
    function brine_errmsg(ck) result(msg)
        type(brine_t), intent(in) :: ck
        character(len=:), allocatable :: msg
        msg = ''
        if (allocated(ck%msg)) msg = ck%msg
        if (len(msg) == 0 .and. c_associated(ck%handle)) msg = f_str(c_errmsg(ck%handle))
    end function

    !> A short description of an error code ("corrupt checkpoint", ...).
    function brine_errstr(code) result(s)
        integer, intent(in) :: code
        character(len=:), allocatable :: s
        s = f_str(c_errstr(int(code, c_int)))
    end function

    !> The library's version, e.g. "0.1.0".
    function brine_version() result(s)
        character(len=:), allocatable :: s
        s = f_str(c_version())
    end function

end module brine
