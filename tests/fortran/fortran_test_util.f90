! Assertions shared by the Fortran tests: each failure names the check, the
! return code and brine's message, then stops with a non-zero status.
module fortran_test_util
    use brine
    implicit none
    private
    public :: ok, expect, expect_rc, has, arg_or, fresh_dir

contains

    !> rc must be 0.
    subroutine ok(ck, rc, what)
        type(brine_t), intent(in) :: ck
        integer, intent(in) :: rc
        character(len=*), intent(in) :: what
        if (rc /= 0) then
            write (*, '(a)') 'FAIL: ' // what // ': ' // brine_errstr(rc) // ': ' // brine_errmsg(ck)
            error stop 1
        end if
    end subroutine

    subroutine expect(cond, what)
        logical, intent(in) :: cond
        character(len=*), intent(in) :: what
        if (.not. cond) then
            write (*, '(a)') 'FAIL: ' // what
            error stop 1
        end if
    end subroutine

    !> rc must be want, and brine_errmsg(ck) must contain every one of parts.
    subroutine expect_rc(ck, rc, want, what, parts)
        type(brine_t), intent(in) :: ck
        integer, intent(in) :: rc, want
        character(len=*), intent(in) :: what
        character(len=*), intent(in) :: parts(:)
        character(len=:), allocatable :: msg
        integer :: k
        msg = brine_errmsg(ck)
        if (rc /= want) then
            write (*, '(a,i0,a,i0,a)') 'FAIL: ' // what // ': got ', rc, ', want ', want, &
                ': ' // msg
            error stop 1
        end if
        do k = 1, size(parts)
            if (.not. has(msg, trim(parts(k)))) then
                write (*, '(a)') 'FAIL: ' // what // ": the message lacks '" // trim(parts(k)) // &
                    "': " // msg
                error stop 1
            end if
        end do
        write (*, '(a)') 'ok: ' // what // ': ' // msg
    end subroutine

    logical function has(s, part)
        character(len=*), intent(in) :: s, part
        has = index(s, part) > 0
    end function

    !> Command-line argument n, or fallback when absent.
    function arg_or(n, fallback) result(s)
        integer, intent(in) :: n
        character(len=*), intent(in) :: fallback
        character(len=:), allocatable :: s
        integer :: length, status
        call get_command_argument(n, length=length, status=status)
        if (status /= 0) then
            s = fallback
            return
        end if
        allocate(character(len=length) :: s)
        call get_command_argument(n, s)
    end function

    !> An empty directory dir (its checkpoints from an earlier run removed).
    subroutine fresh_dir(dir)
        character(len=*), intent(in) :: dir
        integer :: stat
        call execute_command_line('rm -rf "' // dir // '" && mkdir -p "' // dir // '"', &
                                  exitstat=stat)
        call expect(stat == 0, 'cannot make an empty directory ' // dir)
    end subroutine
end module fortran_test_util
