! Module brine_mpi: every rank of MPI_COMM_WORLD registers its own part of the
! state (arrays of a different shape per rank), saves collectively, and
! restores into zeroed memory; test_fortran_mpi.py then loads the run in
! Python.  Rank r holds x(3 + 2r, 2) = 1000 r + i + 10 j + step, ids(3 + 2r)
! = 100 r + i and the scalars rank = r and time = 0.5 step.
! usage: mpirun -np N test_fortran_mpi DIR
program test_fortran_mpi
    use, intrinsic :: iso_fortran_env, only: int32, int64, real64
    use mpi
    use brine
    use brine_mpi
    use fortran_test_util
    implicit none
    type(brine_t) :: ck
    type(brine_options_t) :: opts
    character(len=:), allocatable :: dir
    real(real64), allocatable, target :: x(:, :)
    integer(int32), allocatable, target :: ids(:)
    integer(int32), target :: rank
    real(real64), target :: time
    integer(int64) :: step
    integer :: ierr, nprocs, n, i, j, rc, me

    call MPI_Init(ierr)
    call MPI_Comm_rank(MPI_COMM_WORLD, me, ierr)
    call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
    dir = arg_or(1, 'fortran-mpi-ckpt')
    if (me == 0) call fresh_dir(dir)
    call MPI_Barrier(MPI_COMM_WORLD, ierr)

    n = 3 + 2 * me
    allocate(x(n, 2), ids(n))
    rank = me
    opts%keep_last = 0
    call ok(ck, brine_open_mpi(ck, dir, MPI_COMM_WORLD, opts), 'brine_open_mpi')
    call expect_rc(ck, brine_open_mpi(ck, dir, MPI_COMM_WORLD, opts), BRINE_EINVAL, &
                   'brine_open_mpi on an open context', ['already open'])
    call ok(ck, brine_register(ck, 'field/x', x), 'register field/x')
    call ok(ck, brine_register(ck, 'ids', ids), 'register ids')
    call ok(ck, brine_register(ck, 'rank', rank), 'register rank')
    call ok(ck, brine_register(ck, 'time', time), 'register time')
    rc = brine_restore(ck)
    call expect(rc == BRINE_ENOTFOUND, 'restore from an empty directory is BRINE_ENOTFOUND')

    do step = 1, 2
        call fill(step)
        call ok(ck, brine_save(ck, step), 'save')
    end do
    call ok(ck, brine_close(ck), 'close')

    ! A new context restores step 2 on every rank, into zeroed memory.
    x = 0
    ids = 0
    rank = -1
    time = 0
    call ok(ck, brine_open_mpi(ck, dir, MPI_COMM_WORLD, opts), 'brine_open_mpi again')
    call ok(ck, brine_register(ck, 'field/x', x), 'register field/x again')
    call ok(ck, brine_register(ck, 'ids', ids), 'register ids again')
    call ok(ck, brine_register(ck, 'rank', rank), 'register rank again')
    call ok(ck, brine_register(ck, 'time', time), 'register time again')
    step = -1
    call ok(ck, brine_restore(ck, step), 'restore')
    call expect(step == 2, 'restored step 2')
    call expect(rank == me, 'rank restored')
    call expect(time == 1.0_real64, 'time restored')
    do j = 1, 2
        do i = 1, n
            call expect(x(i, j) == real(1000 * me + i + 10 * j + 2, real64), 'x restored')
        end do
    end do
    call expect(all(ids == [(100 * me + i, i = 1, n)]), 'ids restored')
    call ok(ck, brine_close(ck), 'close again')
    if (me == 0) write (*, '(a,i0,a)') 'ok: ', nprocs, ' ranks saved and restored'
    call MPI_Finalize(ierr)

contains

    subroutine fill(s)
        integer(int64), intent(in) :: s
        do j = 1, 2
            do i = 1, n
                x(i, j) = real(1000 * me + i + 10 * j + s, real64)
            end do
        end do
        ids = [(100 * me + i, i = 1, n)]
        time = 0.5_real64 * real(s, real64)
    end subroutine
end program
