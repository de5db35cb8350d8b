! Options, policies and the rest of the API from Fortran: brine_c_options
! has C's layout and BRINE_OPTIONS_INIT's values; prefix and keep_last
! shape the directory; every_steps drives brine_maybe_save; an asynchronous
! save restores like any other; a signal makes brine_maybe_save save and
! brine_should_exit turn true; attributes are written (test_fortran.py reads them).
! usage: test_fortran_options [DIR]
program test_fortran_options
    use, intrinsic :: iso_c_binding
    use, intrinsic :: iso_fortran_env, only: int64, real64
    use brine
    use fortran_test_util
    implicit none
    save  ! static: allocatables stay reachable until exit, also after a stop
    interface
        integer(c_int) function options_layout(out, n) bind(c, name='brine_test_options_layout')
            import :: c_int, c_size_t
            integer(c_size_t), intent(out) :: out(*)
            integer(c_int), value :: n
        end function
        subroutine options_init(out) bind(c, name='brine_test_options_init')
            import :: brine_c_options
            type(brine_c_options), intent(out) :: out
        end subroutine
        integer(c_int) function c_raise(sig) bind(c, name='brine_test_raise')
            import :: c_int
            integer(c_int), value :: sig
        end function
    end interface
    integer(c_int), parameter :: SIGUSR1 = 10   ! Linux
    type(brine_t) :: ck
    type(brine_options_t) :: opts
    type(brine_c_options), target :: fo
    type(brine_c_options) :: co
    integer(c_size_t) :: c_layout(32), f_layout(19)
    character(kind=c_char), pointer :: chars(:)
    character(len=:), allocatable :: dir
    real(real64), target :: u(3, 2)
    integer(int64), target :: step
    integer :: n, rc, k
    integer(int64) :: s, got
    logical :: there

    dir = arg_or(1, 'fortran-options-ckpt')
    call fresh_dir(dir)

    ! The mirror of struct brine_options: size and every offset as C has them.
    n = options_layout(c_layout, size(c_layout, kind=c_int))
    f_layout = [c_sizeof(fo), off(c_loc(fo%version)), off(c_loc(fo%prefix)), &
                off(c_loc(fo%keep_last)), off(c_loc(fo%level)), off(c_loc(fo%threads)), &
                off(c_loc(fo%io)), off(c_loc(fo%alloc)), off(c_loc(fo%codec)), &
                off(c_loc(fo%restore_flags)), off(c_loc(fo%every_steps)), &
                off(c_loc(fo%every_seconds)), off(c_loc(fo%keep_every)), off(c_loc(fo%async)), &
                off(c_loc(fo%async_flags)), off(c_loc(fo%staging_max)), off(c_loc(fo%use_env)), &
                off(c_loc(fo%clock)), off(c_loc(fo%clock_ctx))]
    call expect(n == size(f_layout), 'C and Fortran list the same number of fields')
    do k = 1, n
        if (c_layout(k) /= f_layout(k)) write (*, '(a,i0,a,i0,a,i0)') 'field ', k - 1, ': C ', &
            c_layout(k), ', Fortran ', f_layout(k)
    end do
    call expect(all(c_layout(1:n) == f_layout), 'brine_c_options has the layout of brine_options')

    ! Its default values are BRINE_OPTIONS_INIT's.
    call options_init(co)
    call expect(co%version == fo%version .and. co%keep_last == fo%keep_last .and. &
                co%level == fo%level .and. co%threads == fo%threads .and. &
                co%codec == fo%codec .and. co%restore_flags == fo%restore_flags .and. &
                co%every_steps == fo%every_steps .and. co%every_seconds == fo%every_seconds .and. &
                co%keep_every == fo%keep_every .and. co%async == fo%async .and. &
                co%async_flags == fo%async_flags .and. co%staging_max == fo%staging_max .and. &
                co%use_env == fo%use_env, 'brine_c_options defaults are BRINE_OPTIONS_INIT')
    call expect(.not. c_associated(co%io) .and. .not. c_associated(co%alloc) .and. &
                .not. c_associated(co%clock_ctx), 'BRINE_OPTIONS_INIT pointers are NULL')
    call c_f_pointer(co%prefix, chars, [5])
    call expect(all(chars == ['c', 'k', 'p', 't', c_null_char]), 'BRINE_OPTIONS_INIT prefix ckpt')
    call expect(trim(opts%prefix) == 'ckpt' .and. opts%keep_last == co%keep_last .and. &
                opts%level == co%level .and. opts%every_steps == co%every_steps .and. &
                (opts%use_env .eqv. co%use_env == 1), 'brine_options_t defaults are C''s')

    ! prefix and keep_last: four saves leave the two newest, named run-*.h5.
    opts%prefix = 'run'
    opts%keep_last = 2
    opts%use_env = .false.
    call ok(ck, brine_open(ck, dir, opts), 'open with prefix run, keep_last 2')
    call ok(ck, brine_register(ck, 'u', u), 'register u')
    call ok(ck, brine_register(ck, 'step', step), 'register step')
    call ok(ck, brine_set_attr(ck, 'program', 'test_fortran_options  '), 'attr program')
    call ok(ck, brine_set_attr(ck, 'nx', 3), 'attr nx (default integer)')
    call ok(ck, brine_set_attr(ck, 'big', 2_int64**40), 'attr big (int64)')
    call ok(ck, brine_set_attr(ck, 'dt', 0.125_real64), 'attr dt')
    do s = 1, 4
        u = real(s, real64)
        step = s
        call ok(ck, brine_save(ck, s), 'save')
    end do
    inquire (file=dir // '/run-000000000002.h5', exist=there)
    call expect(.not. there, 'step 2 rotated away')
    inquire (file=dir // '/run-000000000004.h5', exist=there)
    call expect(there, 'step 4 kept, named run-000000000004.h5')
    call ok(ck, brine_close(ck), 'close')

    ! every_steps: brine_maybe_save saves steps 5 and 10 of 1..12 (returns 1), no other.
    opts%keep_last = 0
    opts%every_steps = 5
    call ok(ck, brine_open(ck, dir, opts), 'open with every_steps 5')
    call ok(ck, brine_register(ck, 'u', u), 'register u')
    call ok(ck, brine_register(ck, 'step', step), 'register step')
    call ok(ck, brine_restore(ck, got), 'restore step 4')
    call expect(got == 4 .and. step == 4 .and. all(u == 4), 'restored step 4 with its values')
    do s = 5, 12
        step = s
        rc = brine_maybe_save(ck, s)
        call expect(rc == merge(1, 0, mod(s, 5_int64) == 0), 'brine_maybe_save saves multiples of 5')
    end do

    ! An asynchronous save: the values of the call, whatever happens after.
    u = 77
    step = 13
    call ok(ck, brine_save_async(ck, 13), 'save_async step 13')
    u = -1
    call ok(ck, brine_wait(ck), 'wait')
    call ok(ck, brine_restore(ck, got), 'restore the async save')
    call expect(got == 13 .and. all(u == 77), 'the async save holds the values of its call')

    ! A signal: the next brine_maybe_save saves (not a multiple of 5) and asks to stop.
    call ok(ck, brine_install_signals(ck, [SIGUSR1]), 'install SIGUSR1')
    call expect(.not. brine_should_exit(ck), 'no signal yet')
    call expect(c_raise(SIGUSR1) == 0, 'raise SIGUSR1')
    step = 14
    rc = brine_maybe_save(ck, 14)
    call expect(rc == 1, 'a signal makes brine_maybe_save save step 14')
    call expect(brine_should_exit(ck), 'brine_should_exit after the signal''s checkpoint')
    inquire (file=dir // '/run-000000000014.h5', exist=there)
    call expect(there, 'the signal''s checkpoint is published')
    call ok(ck, brine_close(ck), 'close')
    write (*, '(a)') 'ok: options, policies, async, signals, attributes'

contains

    !> Offset of a field of fo.
    integer(c_size_t) function off(p)
        type(c_ptr), intent(in) :: p
        off = int(transfer(p, 0_c_intptr_t) - transfer(c_loc(fo), 0_c_intptr_t), c_size_t)
    end function
end program test_fortran_options
