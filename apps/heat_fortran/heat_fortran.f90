! heat_fortran: apps/heat2d in Fortran, checkpointed through module brine.
!
! The same 2-D heat equation dT/dt = alpha * laplacian(T), explicit 5-point
! stencil, OpenMP over columns, on a grid T(nx, ny): x varies fastest, as in
! heat2d's T[j][i].  Fixed boundary: the edge j = 1 (heat2d's row 0, the top)
! is hot (1), the other edges cold (0); the interior starts at 0 with three
! hot spots (1.5).  The same options, the same parameters, the same
! arithmetic in the same order, so the fields are bit-identical to heat2d's.
!
! It checkpoints with brine_maybe_save every --every steps (or --every-seconds)
! and resumes from the newest checkpoint on start.  SIGTERM or SIGUSR1
! checkpoints the current step and exits 0.  The field lives in two
! allocatables swapped with move_alloc (no copy per step) and is registered
! with brine_register_allocatable; brine_update follows each swap.
!
! Python sees field/T with the declared shape (nx, ny), order 'F'.  With
! --c-layout the field is registered as C sees the same memory, (ny, nx)
! order 'C': then its checkpoints are heat2d's, restorable by either program
! (docs/fortran.md, "heat_fortran and heat2d").
program heat_fortran
    use, intrinsic :: iso_c_binding, only: c_int
    use, intrinsic :: iso_fortran_env, only: int64, real64, output_unit, error_unit
    !$ use omp_lib, only: omp_get_max_threads
    use brine
    implicit none
    save  ! static: allocatables stay reachable until exit, also after a stop

    ! alpha * dt / dx^2: below the explicit scheme's stability limit of 1/4.
    real(real64), parameter :: R = 0.2_real64
    integer, parameter :: EXIT_RUNTIME = 1, EXIT_USAGE = 2
    integer(int64), parameter :: MAX_STEP = 999999999999_int64, MAX_EXTENT = 2_int64**20

    interface
        integer(c_int) function usleep(us) bind(c, name='usleep')
            import :: c_int
            integer(c_int), value :: us
        end function
    end interface

    ! Command line.
    integer(int64) :: nx = 512, ny = 512, steps = 1000, every = 100, sleep_ms = 0
    real(real64) :: every_seconds = 0, alpha = 1
    integer(int64) :: keep = 3, level = 1
    character(len=:), allocatable :: dir, out
    logical :: async = .false., c_layout = .false.

    ! State brine saves and restores.
    real(real64), allocatable, target :: T(:, :)
    integer(int64), target :: step = 0, p_nx, p_ny
    real(real64), target :: time_now = 0, p_alpha, p_dx, p_dt

    real(real64), allocatable :: S(:, :), swap(:, :)
    real(real64) :: dx, dt
    type(brine_t) :: ck
    type(brine_options_t) :: opts
    integer(int64) :: restored, last_saved
    integer :: rc, threads

    dir = 'heat_fortran-ckpt'
    out = ''
    call parse_args()
    allocate(T(nx, ny), S(nx, ny))
    dx = 1.0_real64 / real(max(nx, ny) - 1, real64)
    dt = R * dx * dx / alpha
    p_alpha = alpha
    p_dx = dx
    p_dt = dt
    p_nx = nx
    p_ny = ny

    opts%keep_last = int(keep)
    opts%level = int(level)
    opts%every_steps = every
    opts%every_seconds = every_seconds
    opts%async = async
    rc = brine_open(ck, dir, opts)
    if (rc /= 0) call fail('cannot open checkpoint directory ' // dir // ': ' // &
                           brine_errstr(rc) // ': ' // brine_errmsg(ck))
    call check(brine_register_allocatable(ck, 'field/T', T, c_order=c_layout), 'register field/T')
    call check(brine_register(ck, 'step', step), 'register step')
    call check(brine_register(ck, 'time', time_now), 'register time')
    call check(brine_register(ck, 'params/alpha', p_alpha), 'register params/alpha')
    call check(brine_register(ck, 'params/dx', p_dx), 'register params/dx')
    call check(brine_register(ck, 'params/dt', p_dt), 'register params/dt')
    call check(brine_register(ck, 'params/nx', p_nx), 'register params/nx')
    call check(brine_register(ck, 'params/ny', p_ny), 'register params/ny')
    call check(brine_install_signals(ck), 'install signal handlers')

    rc = brine_restore(ck, restored)
    if (rc == BRINE_ENOTFOUND) then
        call initialise(T)
        step = 0
        time_now = 0
        write (output_unit, '(a,i0,a,i0,a,i0,a)') 'no checkpoint in ' // dir // &
            ': starting fresh (', nx, ' x ', ny, ' grid, ', steps, ' steps)'
    else if (rc /= 0) then
        write (error_unit, '(a)') 'heat_fortran: cannot resume from ' // dir // ': ' // &
            brine_errstr(rc) // ': ' // brine_errmsg(ck)
        call fail('not starting over; move the directory away to start fresh')
    else
        ! The field takes the checkpoint's shape; the parameters say whether it is this run's.
        call check(brine_update(ck, 'field/T', T), 'take the restored field')
        if (step /= restored) call fail('the checkpoint in ' // dir // ' holds another step')
        if (p_nx /= nx .or. p_ny /= ny .or. p_alpha /= alpha .or. p_dx /= dx .or. p_dt /= dt) then
            write (error_unit, '(a,i0,a/a,i0,a,i0,a,es24.17,a,es24.17,a,es24.17/a,i0,a,i0,a,' // &
                   'es24.17,a,es24.17,a,es24.17)') &
                'heat_fortran: the checkpoint of step ', restored, ' in ' // dir // &
                ' was written with different parameters:', &
                '  checkpoint:   nx=', p_nx, ' ny=', p_ny, ' alpha=', p_alpha, ' dx=', p_dx, &
                ' dt=', p_dt, '  command line: nx=', nx, ' ny=', ny, ' alpha=', alpha, &
                ' dx=', dx, ' dt=', dt
            call fail('rerun with the checkpoint''s parameters or another --dir')
        end if
        if (step > steps) call fail('the checkpoint in ' // dir // ' is beyond --steps')
        write (output_unit, '(a,i0)') 'resumed from step ', step
    end if

    threads = 1
    !$ threads = omp_get_max_threads()
    write (output_unit, '(a,i0,a,i0,a,i0,a,i0,a,es12.6,a,i0,a)') 'heat_fortran: ', nx, ' x ', ny, &
        ' grid, steps ', step, '..', steps, ', dt ', dt, ', ', threads, ' thread(s)'
    flush (output_unit)

    last_saved = merge(step, -1_int64, rc == 0)   ! a resumed step is already on disk
    S = T                                        ! the boundary values, fixed in both
    do while (step < steps)
        call step_once(T, S)
        call move_alloc(T, swap)
        call move_alloc(S, T)
        call move_alloc(swap, S)
        call check(brine_update(ck, 'field/T', T), 'follow the swapped field')
        step = step + 1
        time_now = real(step, real64) * dt
        rc = brine_maybe_save(ck, step)
        if (rc < 0) call fail_rc(rc, 'checkpoint failed')
        if (rc == 1) then
            write (output_unit, '(a,i0,a)') 'step ', step, ' saved'
            flush (output_unit)
            last_saved = step
        end if
        if (brine_should_exit(ck)) then
            write (output_unit, '(a,i0,a)') 'signal received: stopped at step ', step, &
                ', its checkpoint is in ' // dir // '; rerun to resume'
            rc = brine_close(ck)
            stop
        end if
        if (sleep_ms > 0) rc = usleep(int(sleep_ms * 1000, c_int))
    end do
    ! The final state is always checkpointed, so a rerun finds the run complete.
    if (last_saved /= step) then
        call check(brine_save(ck, step), 'checkpoint of the final step')
        write (output_unit, '(a,i0,a)') 'step ', step, ' saved'
    end if
    write (output_unit, '(a,i0,a,es17.9,a,es17.9,a,es17.9)') 'done: step ', step, ', time ', &
        time_now, ', mean T ', sum(T) / real(size(T), real64), ', max T ', maxval(T)
    if (len(out) > 0) call write_field(out)
    rc = brine_close(ck)
    if (rc /= 0) call fail('closing: ' // brine_errmsg(ck))

contains

    !> heat2d's initial condition, index for index: T(i + 1, j + 1) is heat2d's T[j][i].
    subroutine initialise(f)
        real(real64), intent(out) :: f(:, :)
        real(real64), parameter :: spots(3, 3) = reshape([0.30_real64, 0.55_real64, 0.08_real64, &
            0.68_real64, 0.35_real64, 0.12_real64, 0.62_real64, 0.78_real64, 0.05_real64], [3, 3])
        real(real64) :: sx, sy, x, y, ddx, ddy, v
        integer(int64) :: i, j
        integer :: s
        sx = 1.0_real64 / real(nx - 1, real64)
        sy = 1.0_real64 / real(ny - 1, real64)
        do j = 0, ny - 1
            do i = 0, nx - 1
                v = 0
                if (j == 0) then
                    v = 1
                else if (j < ny - 1 .and. i > 0 .and. i < nx - 1) then
                    x = real(i, real64) * sx
                    y = real(j, real64) * sy
                    do s = 1, 3
                        ddx = x - spots(1, s)
                        ddy = y - spots(2, s)
                        if (ddx * ddx + ddy * ddy <= spots(3, s) * spots(3, s)) v = 1.5_real64
                    end do
                end if
                f(i + 1, j + 1) = v
            end do
        end do
    end subroutine

    !> One explicit step, heat2d's expression in heat2d's order:
    !> out = in + R * (N + S + W + E - 4 in) on the interior.
    subroutine step_once(fin, fout)
        real(real64), intent(in) :: fin(:, :)
        real(real64), intent(inout) :: fout(:, :)
        integer(int64) :: i, j
        !$omp parallel do schedule(static) private(i)
        do j = 2, ny - 1
            do i = 2, nx - 1
                fout(i, j) = fin(i, j) + R * (fin(i, j - 1) + fin(i, j + 1) + fin(i - 1, j) + &
                                              fin(i + 1, j) - 4.0_real64 * fin(i, j))
            end do
        end do
        !$omp end parallel do
    end subroutine

    !> The field as raw float64 in memory order: heat2d's --out file, byte for byte
    !> (little-endian hosts).
    subroutine write_field(path)
        character(len=*), intent(in) :: path
        integer :: u, ios
        open (newunit=u, file=path, access='stream', form='unformatted', status='replace', &
              action='write', iostat=ios)
        if (ios /= 0) call fail('cannot create ' // path)
        write (u, iostat=ios) T
        if (ios /= 0) call fail('cannot write ' // path)
        close (u)
        write (output_unit, '(a,i0,a,i0,a)') 'wrote ' // path // ' (', ny, ' x ', nx, &
            ' float64, little-endian, heat2d''s layout)'
    end subroutine

    subroutine check(code, what)
        integer, intent(in) :: code
        character(len=*), intent(in) :: what
        if (code /= 0) call fail_rc(code, what)
    end subroutine

    subroutine fail_rc(code, what)
        integer, intent(in) :: code
        character(len=*), intent(in) :: what
        call fail(what // ': ' // brine_errstr(code) // ': ' // brine_errmsg(ck))
    end subroutine

    subroutine fail(msg)
        character(len=*), intent(in) :: msg
        integer :: ignored
        write (error_unit, '(a)') 'heat_fortran: ' // msg
        ignored = brine_close(ck)
        stop EXIT_RUNTIME
    end subroutine

    subroutine usage_error(msg)
        character(len=*), intent(in) :: msg
        write (error_unit, '(a)') 'heat_fortran: ' // msg
        write (error_unit, '(a)') "Try 'heat_fortran --help'."
        stop EXIT_USAGE
    end subroutine

    subroutine usage()
        write (output_unit, '(a)') &
            'usage: heat_fortran [options]', '', &
            '2-D heat equation (explicit 5-point stencil, OpenMP) in Fortran, checkpointed with', &
            'module brine ' // brine_version() // '.  The same equation, options and results as heat2d.', &
            'On start it resumes from the newest valid checkpoint in --dir, if any.', '', &
            'options:', &
            '  --nx N          grid points along x, >= 3             [512]', &
            '  --ny N          grid points along y, >= 3             [512]', &
            '  --steps N       total number of time steps            [1000]', &
            '  --every N       checkpoint every N steps; 0: only at the end [100]', &
            '  --every-seconds S  also checkpoint every S seconds; 0: off [0]', &
            '  --dir DIR       checkpoint directory                  [heat_fortran-ckpt]', &
            '  --keep N        checkpoints kept; <= 0 keeps all      [3]', &
            '  --level L       deflate level 0..9                    [1]', &
            '  --alpha A       thermal diffusivity, > 0              [1]', &
            '  --out FILE      write the final field as raw little-endian float64', &
            '                  (heat2d''s --out layout)', &
            '  --sleep-ms M    sleep M milliseconds after every step (demos)  [0]', &
            '  --async         save checkpoints in the background', &
            '  --c-layout      register the field as C sees it, (ny, nx) order C: the', &
            '                  checkpoints are then interchangeable with heat2d''s', &
            '  -h, --help      this help', '', &
            'SIGTERM or SIGUSR1 checkpoints the current step and exits 0; the next run resumes.', &
            'Threads: OMP_NUM_THREADS.  Exit status: 0 success, 1 runtime error, 2 usage.'
    end subroutine

    function arg(k) result(s)
        integer, intent(in) :: k
        character(len=:), allocatable :: s
        integer :: length
        call get_command_argument(k, length=length)
        allocate(character(len=length) :: s)
        call get_command_argument(k, s)
    end function

    !> A whole decimal integer in [lo, hi].
    function int_value(opt, text, lo, hi) result(v)
        character(len=*), intent(in) :: opt, text
        integer(int64), intent(in) :: lo, hi
        integer(int64) :: v
        integer :: ios
        v = 0
        ios = 1
        if (len(text) > 0 .and. verify(text, '-0123456789') == 0) read (text, *, iostat=ios) v
        if (ios /= 0 .or. v < lo .or. v > hi) call usage_error("invalid value '" // text // &
                                                               "' for " // opt)
    end function

    function real_value(opt, text) result(v)
        character(len=*), intent(in) :: opt, text
        real(real64) :: v
        integer :: ios
        v = 0
        ios = 1
        if (len(text) > 0 .and. verify(text, '+-.0123456789eE') == 0) read (text, *, iostat=ios) v
        if (ios /= 0) call usage_error("invalid value '" // text // "' for " // opt)
    end function

    subroutine parse_args()
        integer :: k, n
        character(len=:), allocatable :: a, v
        n = command_argument_count()
        k = 1
        v = ''
        do while (k <= n)
            a = arg(k)
            if (a == '-h' .or. a == '--help') then
                call usage()
                stop
            end if
            if (a == '--async') then
                async = .true.
                k = k + 1
                cycle
            end if
            if (a == '--c-layout') then
                c_layout = .true.
                k = k + 1
                cycle
            end if
            if (k == n) call usage_error("option '" // a // "' requires an argument")
            v = arg(k + 1)
            select case (a)
            case ('--nx')
                nx = int_value(a, v, 3_int64, MAX_EXTENT)
            case ('--ny')
                ny = int_value(a, v, 3_int64, MAX_EXTENT)
            case ('--steps')
                steps = int_value(a, v, 0_int64, MAX_STEP)
            case ('--every')
                every = int_value(a, v, 0_int64, MAX_STEP)
            case ('--every-seconds')
                every_seconds = real_value(a, v)
                if (.not. (every_seconds >= 0) .or. every_seconds > 1e12_real64) &
                    call usage_error("invalid value '" // v // "' for " // a)
            case ('--dir')
                if (len(v) == 0) call usage_error("invalid value '' for --dir")
                dir = v
            case ('--keep')
                keep = int_value(a, v, -2147483647_int64, 2147483647_int64)
            case ('--level')
                level = int_value(a, v, 0_int64, 9_int64)
            case ('--alpha')
                alpha = real_value(a, v)
                if (.not. (alpha > 0) .or. alpha > 1e300_real64) &
                    call usage_error("invalid value '" // v // "' for " // a)
            case ('--out')
                if (len(v) == 0) call usage_error("invalid value '' for --out")
                out = v
            case ('--sleep-ms')
                sleep_ms = int_value(a, v, 0_int64, 3600000_int64)
            case default
                call usage_error("unrecognized option '" // a // "'")
            end select
            k = k + 2
        end do
    end subroutine
end program heat_fortran
