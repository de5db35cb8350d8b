! Error paths of the Fortran module: each returns the right code and a
! message, reaching Fortran as a string, that names the variable and says
! what was expected and found.
! usage: test_fortran_errors [DIR]
program test_fortran_errors
    use, intrinsic :: iso_fortran_env, only: int32, int64, real64
    use brine
    use fortran_test_util
    implicit none
    save  ! static: allocatables stay reachable until exit, also after a stop
    type(brine_t) :: ck, never_opened
    type(brine_options_t) :: opts
    character(len=:), allocatable :: dir
    real(real64), target :: grid(4, 3), wide(3, 4), field(6, 5)
    integer(int32), target :: counts(4, 3)
    real(real64), target :: deep(1, 1, 1, 1, 1, 1, 1, 2, 2)
    character(len=4), target :: short
    character(len=16), target :: label
    integer :: rc

    dir = arg_or(1, 'fortran-errors-ckpt')
    call fresh_dir(dir)

    ! Calls on a context that is not open.
    rc = brine_save(never_opened, 1)
    call expect_rc(never_opened, rc, BRINE_EINVAL, 'save on a context never opened', &
                   [character(len=16) :: 'not open'])
    call expect(.not. brine_is_open(never_opened), 'brine_is_open of a context never opened')
    call expect(brine_close(never_opened) == 0, 'closing a context never opened is a no-op')

    ! brine_open's own failure reaches brine_errmsg.
    opts%level = 99
    opts%use_env = .false.
    rc = brine_open(ck, dir, opts)
    call expect_rc(ck, rc, BRINE_EINVAL, 'open with level 99', [character(len=16) :: 'level', '99'])
    call expect(.not. brine_is_open(ck), 'a failed open leaves the context closed')
    opts%level = 1
    opts%prefix = 'bad/prefix'
    rc = brine_open(ck, dir, opts)
    call expect_rc(ck, rc, BRINE_EINVAL, 'open with a bad prefix', [character(len=16) :: 'bad/prefix'])
    opts%prefix = 'ckpt'

    call ok(ck, brine_open(ck, dir, opts), 'open')
    rc = brine_open(ck, dir, opts)
    call expect_rc(ck, rc, BRINE_EINVAL, 'opening an open context', [character(len=16) :: 'already open'])

    ! Restoring from an empty directory.
    rc = brine_restore(ck)
    call expect_rc(ck, rc, BRINE_ENOTFOUND, 'restore from an empty directory', [dir])

    ! A strided section is refused, naming the variable; nothing is registered.
    rc = brine_register(ck, 'field/every_other_row', field(1:6:2, :))
    call expect_rc(ck, rc, BRINE_EINVAL, 'register a strided section', &
                   [character(len=32) :: "'field/every_other_row'", 'not contiguous'])
    ! A contiguous section (whole columns) is memory brine can keep.
    call ok(ck, brine_register(ck, 'field/cols', field(:, 2:4)), 'register contiguous columns')

    ! Fortran allows rank 15, brine 8 (BRINE_MAX_NDIM): the rest is refused.
    rc = brine_register(ck, 'deep', deep)
    call expect_rc(ck, rc, BRINE_EINVAL, 'register a rank-9 array', [character(len=16) :: 'deep', '9'])

    ! Names brine refuses, and duplicates: C's message reaches Fortran.
    rc = brine_register(ck, 'bad name', grid)
    call expect_rc(ck, rc, BRINE_EINVAL, 'register a name with a space', [character(len=16) :: 'bad name'])
    call ok(ck, brine_register(ck, 'grid', grid), 'register grid')
    rc = brine_register(ck, 'grid', grid)
    call expect_rc(ck, rc, BRINE_EINVAL, 'register grid twice', [character(len=16) :: 'grid'])
    call ok(ck, brine_register(ck, 'counts', counts), 'register counts')
    call ok(ck, brine_register(ck, 'label', label), 'register label')
    grid = 1
    field = 2
    counts = 3
    label = 'a label too long'
    call ok(ck, brine_save(ck, 7), 'save step 7')
    call expect(brine_errmsg(ck) == '', 'no message after a success')
    call ok(ck, brine_close(ck), 'close')

    ! Another program registers the same names with other shapes and kinds:
    ! brine_restore lists every difference, with both shapes and orders.
    call ok(ck, brine_open(ck, dir, opts), 'reopen')
    call ok(ck, brine_register(ck, 'grid', wide), 'register grid as (3, 4)')
    call ok(ck, brine_register(ck, 'counts', grid), 'register counts as real64')
    call ok(ck, brine_register(ck, 'field/cols', field(:, 2:4)), 'register field/cols')
    call ok(ck, brine_register(ck, 'label', short), 'register a label of 4 characters')
    wide = -1
    rc = brine_restore(ck)
    call expect_rc(ck, rc, BRINE_EMISMATCH, 'restore into other shapes and dtypes', &
                   [character(len=32) :: "'grid'", '(3, 4) order F', '(4, 3) order F', &
                    "'counts'", 'int32', 'float64', "'label'"])
    call expect(all(wide == -1), 'a refused restore writes no registered memory')
    call ok(ck, brine_close(ck), 'close after the mismatch')

    ! Variables missing from the checkpoint, and partial restores.
    opts%restore_flags = BRINE_RESTORE_PARTIAL
    call ok(ck, brine_open(ck, dir, opts), 'open with BRINE_RESTORE_PARTIAL')
    call ok(ck, brine_register(ck, 'grid', grid), 'register grid')
    call ok(ck, brine_register(ck, 'extra', short), 'register extra')
    short = 'keep'
    grid = 0
    call ok(ck, brine_restore(ck), 'partial restore')
    call expect(all(grid == 1), 'grid restored by the partial restore')
    call expect(short == 'keep', 'a variable missing from the checkpoint keeps its value')
    call expect(has(brine_restore_report(ck), 'extra'), 'the report names extra: ' // &
                brine_restore_report(ck))
    call ok(ck, brine_close(ck), 'close')

    call expect(brine_errstr(BRINE_EMISMATCH) /= '', 'brine_errstr has a text')
    call expect(len(brine_version()) > 0, 'brine_version')
    write (*, '(a)') 'ok: every error path'
end program test_fortran_errors
