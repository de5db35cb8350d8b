! brine over MPI for Fortran (docs/fortran.md, docs/mpi.md): module brine_mpi.
!
! Built, as libbrine_mpi_fortran, only when brine_mpi (lib/mpi) and MPI's
! Fortran bindings are: module brine itself never depends on MPI.  A program
! uses both modules; every other call (brine_register, brine_save,
! brine_restore, brine_close...) is module brine's and, on a context opened
! here, collective over the communicator as docs/mpi.md says.
module brine_mpi
    use brine, only: brine_t, brine_options_t, brine_open_via, c_open_comm
    implicit none
    private
    public :: brine_open_mpi

    ! bindings/fortran/brine_mpi_f.c: brine_open_mpi after MPI_Comm_f2c.
    procedure(c_open_comm), bind(c, name='brine_open_mpi_f') :: c_open_mpi_f

contains

    !> Opens ck as brine_open does, for every rank of communicator comm:
    !> called by every rank of comm with the same dir and options (C's
    !> brine_open_mpi, lib/include/brine_mpi.h).  comm is the integer
    !> handle of `use mpi` (MPI_COMM_WORLD), or comm%MPI_VAL of `use
    !> mpi_f08`; brine duplicates it, and brine_close(ck), called by every
    !> rank before MPI_Finalize, frees the duplicate.  Each checkpoint is the
    !> directory <dir>/<prefix>-<step>/ of one rank-<r>.h5 per rank and a
    !> manifest.  Returns 0 on every rank or the same BRINE_E* code on every
    !> rank (brine_errmsg(ck) says why).
    function brine_open_mpi(ck, dir, comm, opts) result(rc)
        type(brine_t), intent(inout) :: ck
        character(len=*), intent(in) :: dir
        integer, intent(in) :: comm
        type(brine_options_t), intent(in), optional :: opts
        integer :: rc
        rc = brine_open_via(ck, dir, opts, c_open_mpi_f, comm)
    end function

end module brine_mpi
