! Every kind x rank 0..7 round trip, bit-exact: registers integer(int8..int64),
! real(real32/real64), complex(real32/real64), logical(c_bool) and default
! logical variables of ranks 0..7 (and a character variable and a c_order
! array), saves the pattern test_fortran.py reads as step 1, then random
! bits (NaN payloads, denormals, negative zeros: any bytes) as step 2;
! scribbles over all of it, restores, and compares every byte.
! usage: test_fortran_kinds [DIR]
module kinds_vars
    use, intrinsic :: iso_c_binding
    use, intrinsic :: iso_fortran_env, only: int8, int16, int32, int64, real32, real64
    use brine
    use fortran_test_util
    implicit none

#define DECLARE
#define FTYPE integer(int8)
#define SFX i8
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE integer(int16)
#define SFX i16
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE integer(int32)
#define SFX i32
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE integer(int64)
#define SFX i64
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE real(real32)
#define SFX r32
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE real(real64)
#define SFX r64
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE complex(real32)
#define SFX c32
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE complex(real64)
#define SFX c64
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE logical(c_bool)
#define SFX lb
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#define FTYPE logical
#define SFX ld
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef DECLARE

    ! Registered as the C view of the same memory: Python sees shape (3, 2), order C.
    real(real64), target, save :: c_view(2, 3)
    character(len=40), target, save :: text

    ! Every tracked variable: its memory, byte count, logical element size
    ! (0 for numbers) and the bytes expected after the restore.
    type :: tracked
        character(len=32) :: name
        type(c_ptr) :: p
        integer(int64) :: nbytes
        integer :: lbytes
        integer(int8), allocatable :: want(:)
    end type
    type(tracked) :: vars(100)
    integer :: nvars = 0

contains

    subroutine track(name, p, nbytes, lbytes)
        character(len=*), intent(in) :: name
        type(c_ptr), intent(in) :: p
        integer(int64), intent(in) :: nbytes
        integer, intent(in) :: lbytes
        nvars = nvars + 1
        vars(nvars)%name = name
        vars(nvars)%p = p
        vars(nvars)%nbytes = nbytes
        vars(nvars)%lbytes = lbytes
    end subroutine

    function bytes(v) result(b)
        type(tracked), intent(in) :: v
        integer(int8), pointer :: b(:)
        call c_f_pointer(v%p, b, [v%nbytes])
    end function

    !> Random bits in numbers; random .true./.false. in logicals (gfortran's 1 and 0).
    subroutine randomise()
        integer :: k
        integer(int64) :: i
        real :: r
        integer(int8), pointer :: b(:)
        do k = 1, nvars
            b => bytes(vars(k))
            do i = 1, vars(k)%nbytes
                call random_number(r)
                if (vars(k)%lbytes == 0) then
                    b(i) = int(int(r * 256) - 128, int8)
                else if (mod(i - 1, int(vars(k)%lbytes, int64)) == 0) then
                    b(i) = merge(1_int8, 0_int8, r < 0.5)
                else
                    b(i) = 0
                end if
            end do
        end do
    end subroutine

    !> Changes every element: complements number bits, negates logicals.
    subroutine scribble()
        integer :: k
        integer(int64) :: i
        integer(int8), pointer :: b(:)
        do k = 1, nvars
            b => bytes(vars(k))
            do i = 1, vars(k)%nbytes
                if (vars(k)%lbytes == 0) then
                    b(i) = not(b(i))
                else if (mod(i - 1, int(vars(k)%lbytes, int64)) == 0) then
                    b(i) = 1_int8 - b(i)
                end if
            end do
        end do
    end subroutine

#define FTYPE integer(int8)
#define SFX i8
#define PATTERN(k) int(mod(k, 100_int64) + 1, int8)
#define LBYTES 0
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#define FTYPE integer(int16)
#define SFX i16
#define PATTERN(k) int(mod(k, 100_int64) + 1, int16)
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#define FTYPE integer(int32)
#define SFX i32
#define PATTERN(k) int(mod(k, 100_int64) + 1, int32)
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#define FTYPE integer(int64)
#define SFX i64
#define PATTERN(k) (mod(k, 100_int64) + 1)
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#define FTYPE real(real32)
#define SFX r32
#define PATTERN(k) (real(k, real32) + 0.5_real32)
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#define FTYPE real(real64)
#define SFX r64
#define PATTERN(k) (real(k, real64) + 0.5_real64)
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#define FTYPE complex(real32)
#define SFX c32
#define PATTERN(k) cmplx(real(k, real32) + 0.5_real32, -real(k, real32), real32)
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#define FTYPE complex(real64)
#define SFX c64
#define PATTERN(k) cmplx(real(k, real64) + 0.5_real64, -real(k, real64), real64)
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#undef LBYTES
#define FTYPE logical(c_bool)
#define SFX lb
#define PATTERN(k) logical(mod(k, 3_int64) == 1, c_bool)
#define LBYTES 1
#include "kinds_case.inc"
#undef FTYPE
#undef SFX
#undef PATTERN
#undef LBYTES
#define FTYPE logical
#define SFX ld
#define PATTERN(k) (mod(k, 3_int64) == 1)
#define LBYTES 4
#include "kinds_case.inc"
end module kinds_vars

program test_fortran_kinds
    use kinds_vars
    implicit none
    save  ! static: allocatables stay reachable until exit, also after a stop
    type(brine_t) :: ck
    type(brine_options_t) :: opts
    character(len=:), allocatable :: dir
    integer(int64) :: step
    integer :: k
    logical :: changed
    integer(int8), pointer :: b(:)

    dir = arg_or(1, 'fortran-kinds-ckpt')
    call fresh_dir(dir)
    opts%keep_last = 0
    call ok(ck, brine_open(ck, dir, opts), 'open ' // dir)
    call register_i8(ck, 'i8')
    call register_i16(ck, 'i16')
    call register_i32(ck, 'i32')
    call register_i64(ck, 'i64')
    call register_r32(ck, 'r32')
    call register_r64(ck, 'r64')
    call register_c32(ck, 'c32')
    call register_c64(ck, 'c64')
    call register_lb(ck, 'lb')
    call register_ld(ck, 'ld')
    call ok(ck, brine_register(ck, 'c_view', c_view, c_order=.true.), 'register c_view')
    call track('c_view', c_loc(c_view), int(storage_size(c_view) / 8 * size(c_view), int64), 0)
    call ok(ck, brine_register(ck, 'text', text), 'register text')

    ! Step 1: the patterns, for test_fortran.py.
    call pattern_i8()
    call pattern_i16()
    call pattern_i32()
    call pattern_i64()
    call pattern_r32()
    call pattern_r64()
    call pattern_c32()
    call pattern_c64()
    call pattern_lb()
    call pattern_ld()
    c_view = reshape([(real(k, real64) + 0.5_real64, k = 0, 5)], [2, 3])
    text = 'Fortran écrit ceci'
    call ok(ck, brine_save(ck, 1_int64), 'save step 1')

    ! Step 2: random bits everywhere.
    call random_seed()
    call randomise()
    do k = 1, nvars
        b => bytes(vars(k))
        vars(k)%want = b
    end do
    text = 'step two'
    call ok(ck, brine_save(ck, 2), 'save step 2')

    call scribble()
    do k = 1, nvars
        changed = any(bytes(vars(k)) /= vars(k)%want)
        call expect(changed, 'scribbling changed ' // trim(vars(k)%name))
    end do
    text = 'scribbled'
    step = -1
    call ok(ck, brine_restore(ck, step), 'restore')
    call expect(step == 2, 'restored step 2')
    do k = 1, nvars
        call expect(all(bytes(vars(k)) == vars(k)%want), &
                    'bit-exact restore of ' // trim(vars(k)%name))
    end do
    call expect(text == 'step two', 'text restored, blank-padded: [' // text // ']')
    call ok(ck, brine_close(ck), 'close')
    write (*, '(a,i0,a)') 'ok: ', nvars, ' variables of every kind and rank 0..7 restored bit-exactly'
end program test_fortran_kinds
