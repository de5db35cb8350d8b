! Allocatables registered with brine_register_allocatable: they grow and
! shrink between saves (announced with brine_update), restore into another
! size or shape (brine_update then reallocates them), may be unallocated, and
! a save refuses to run while a restored shape waits for brine_update.
! usage: test_fortran_alloc [DIR]
program test_fortran_alloc
    use, intrinsic :: iso_c_binding, only: c_bool
    use, intrinsic :: iso_fortran_env, only: int32, int64, real64
    use brine
    use fortran_test_util
    implicit none
    save  ! static: allocatables stay reachable until exit, also after a stop
    type(brine_t) :: ck
    type(brine_options_t) :: opts
    character(len=:), allocatable :: dir
    real(real64), allocatable, target :: x(:), m(:, :), cv(:, :)
    integer(int32), allocatable, target :: ids(:)
    logical(c_bool), allocatable, target :: flags(:, :, :)
    real(real64), target :: fixed(3)
    integer(int64) :: step
    integer :: i, rc

    dir = arg_or(1, 'fortran-alloc-ckpt')
    call fresh_dir(dir)
    opts%keep_last = 0

    call ok(ck, brine_open(ck, dir, opts), 'open')
    allocate(x(5), m(2, 6), cv(2, 3), flags(2, 1, 2))
    x = [(real(i, real64), i = 1, 5)]
    m = reshape([(real(i, real64), i = 1, 12)], [2, 6])
    cv = reshape([(real(i, real64) * 10, i = 1, 6)], [2, 3])
    flags = reshape(logical([.true., .false., .false., .true.], c_bool), [2, 1, 2])
    call ok(ck, brine_register_allocatable(ck, 'x', x), 'register x')
    call ok(ck, brine_register_allocatable(ck, 'm', m), 'register m')
    call ok(ck, brine_register_allocatable(ck, 'cv', cv, c_order=.true.), 'register cv (C view)')
    call ok(ck, brine_register_allocatable(ck, 'ids', ids), 'register ids, unallocated')
    call ok(ck, brine_register_allocatable(ck, 'flags', flags), 'register flags')
    call ok(ck, brine_save(ck, 1), 'save step 1')

    ! Grow x and allocate ids: brine reads the new memory after brine_update.
    deallocate(x)
    allocate(x(8))
    x = [(real(i, real64) * 1.5_real64, i = 1, 8)]
    call ok(ck, brine_update(ck, 'x', x), 'update x grown to 8')
    allocate(ids(4))
    ids = [7, 8, 9, 10]
    call ok(ck, brine_update(ck, 'ids', ids), 'update ids allocated')
    call ok(ck, brine_save(ck, 2), 'save step 2')

    ! Shrink x, give cv another shape; drop ids.
    deallocate(x, cv)
    allocate(x(3), cv(4, 1))
    x = [-1.0_real64, -2.0_real64, -3.0_real64]
    cv = reshape([0.25_real64, 0.5_real64, 0.75_real64, 1.0_real64], [4, 1])
    call ok(ck, brine_update(ck, 'x', x), 'update x shrunk to 3')
    call ok(ck, brine_update(ck, 'cv', cv), 'update cv')
    deallocate(ids)
    call ok(ck, brine_update(ck, 'ids', ids), 'update ids deallocated')
    call ok(ck, brine_save(ck, 3), 'save step 3')

    ! brine_update checks the name, the kind and the rank.
    rc = brine_update(ck, 'nope', x)
    call expect_rc(ck, rc, BRINE_EINVAL, 'update of an unknown name', [character(len=16) :: "'nope'"])
    rc = brine_update(ck, 'x', m)
    call expect_rc(ck, rc, BRINE_EINVAL, 'update of x with a rank-2 array', &
                   [character(len=16) :: "'x'", 'rank 1', 'rank 2'])
    rc = brine_update(ck, 'ids', x)
    call expect_rc(ck, rc, BRINE_EINVAL, 'update of ids with real64', &
                   [character(len=16) :: "'ids'", '<i4', '<f8'])
    call ok(ck, brine_close(ck), 'close')

    ! A new run with other sizes restores step 3: shapes follow the checkpoint.
    deallocate(x, m, cv, flags)
    allocate(x(2), m(3, 4), cv(1, 1), ids(9), flags(1, 1, 1))
    x = 0
    m = 0
    call ok(ck, brine_open(ck, dir, opts), 'reopen')
    call ok(ck, brine_register_allocatable(ck, 'x', x), 'register x(2)')
    call ok(ck, brine_register_allocatable(ck, 'm', m), 'register m(3, 4)')
    call ok(ck, brine_register_allocatable(ck, 'cv', cv, c_order=.true.), 'register cv(1, 1)')
    call ok(ck, brine_register_allocatable(ck, 'ids', ids), 'register ids(9)')
    call ok(ck, brine_register_allocatable(ck, 'flags', flags), 'register flags(1, 1, 1)')
    call ok(ck, brine_restore(ck, step), 'restore')
    call expect(step == 3, 'restored step 3')

    ! Until brine_update, saving would write memory the program does not see.
    rc = brine_save(ck, 4)
    call expect_rc(ck, rc, BRINE_EINVAL, 'save before brine_update', &
                   [character(len=32) :: "'x'", '(3,)', 'brine_update'])
    call ok(ck, brine_update(ck, 'x', x), 'update x after restore')
    call ok(ck, brine_update(ck, 'm', m), 'update m after restore')
    call ok(ck, brine_update(ck, 'cv', cv), 'update cv after restore')
    call ok(ck, brine_update(ck, 'ids', ids), 'update ids after restore')
    call ok(ck, brine_update(ck, 'flags', flags), 'update flags after restore')
    call expect(size(x) == 3, 'x has the restored size 3')
    call expect(all(x == [-1.0_real64, -2.0_real64, -3.0_real64]), 'x has the restored values')
    ! m kept its bytes (12 values) but takes the restored shape (2, 6).
    call expect(all(shape(m) == [2, 6]), 'm has the restored shape (2, 6)')
    call expect(all(m == reshape([(real(i, real64), i = 1, 12)], [2, 6])), 'm has its values')
    call expect(all(shape(cv) == [4, 1]), 'cv (a C view) has the restored Fortran shape (4, 1)')
    call expect(all(cv == reshape([0.25_real64, 0.5_real64, 0.75_real64, 1.0_real64], [4, 1])), &
                'cv has its values')
    call expect(allocated(ids), 'ids stays allocated')
    call expect(size(ids) == 0, 'ids restored empty')
    call expect(all(shape(flags) == [2, 1, 2]), 'flags has the restored shape')
    call expect(logical(all(flags .eqv. reshape(logical([.true., .false., .false., .true.], c_bool), &
                                        [2, 1, 2]))), 'flags has its values')
    call ok(ck, brine_save(ck, 4), 'save after brine_update')
    call ok(ck, brine_close(ck), 'close')

    ! Step 2 (x grown to 8, ids allocated): restored once steps 3 and 4 are gone.
    call execute_command_line('rm "' // dir // '/ckpt-000000000003.h5" "' // dir // &
                              '/ckpt-000000000004.h5"', exitstat=rc)
    call expect(rc == 0, 'removing steps 3 and 4')
    call ok(ck, brine_open(ck, dir, opts), 'reopen for step 2')
    call ok(ck, brine_register_allocatable(ck, 'x', x), 'register x')
    call ok(ck, brine_register_allocatable(ck, 'm', m), 'register m')
    call ok(ck, brine_register_allocatable(ck, 'cv', cv, c_order=.true.), 'register cv')
    call ok(ck, brine_register_allocatable(ck, 'ids', ids), 'register ids')
    call ok(ck, brine_register_allocatable(ck, 'flags', flags), 'register flags')
    call ok(ck, brine_restore(ck, step), 'restore step 2')
    call expect(step == 2, 'restored step 2')
    call ok(ck, brine_update(ck, 'x', x), 'update x')
    call ok(ck, brine_update(ck, 'ids', ids), 'update ids')
    call ok(ck, brine_update(ck, 'cv', cv), 'update cv')
    call expect(size(x) == 8, 'x grown back to 8')
    call expect(all(x == [(real(i, real64) * 1.5_real64, i = 1, 8)]), 'x of step 2')
    call expect(all(ids == [7, 8, 9, 10]), 'ids of step 2')
    call expect(all(shape(cv) == [2, 3]), 'cv of step 2 has shape (2, 3)')
    call expect(all(cv == reshape([(real(i, real64) * 10, i = 1, 6)], [2, 3])), 'cv of step 2')

    ! A restore that fails leaves every allocatable as it is, with no update due.
    fixed = 0
    call ok(ck, brine_close(ck), 'close')
    call ok(ck, brine_open(ck, dir, opts), 'reopen with one variable more')
    deallocate(x)
    allocate(x(1))
    call ok(ck, brine_register_allocatable(ck, 'x', x), 'register x(1)')
    call ok(ck, brine_register(ck, 'fixed', fixed), 'register fixed')
    rc = brine_restore(ck)
    call expect_rc(ck, rc, BRINE_EMISMATCH, 'restore with a variable the checkpoint lacks', &
                   [character(len=16) :: "'fixed'"])
    x = 42
    call ok(ck, brine_save(ck, 9), 'save after a failed restore (x as it is)')
    call ok(ck, brine_close(ck), 'close')
    write (*, '(a)') 'ok: allocatables grow, shrink and restore into other sizes'
end program test_fortran_alloc
