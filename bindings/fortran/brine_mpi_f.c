/*
 * The C side of module brine_mpi (bindings/fortran/brine_mpi.F90,
 * docs/fortran.md): brine_open_mpi with a Fortran communicator handle.
 * Built into libbrine_mpi_fortran, with the module, only when brine_mpi and
 * MPI's Fortran bindings are built; neither libbrine nor libbrine_fortran
 * depends on MPI.
 */
#include "brine_mpi.h"

/**
 * brine_open_mpi() with comm given as a Fortran handle: the integer of `use
 * mpi` (or mpif.h), or `MPI_Comm%MPI_VAL` of `use mpi_f08`, converted with
 * MPI_Comm_f2c.  Module brine_mpi's brine_open_mpi calls it; C programs call
 * brine_open_mpi().
 * @return as brine_open_mpi().
 */
BRINE_API int brine_open_mpi_f(brine **out, const char *dir, MPI_Fint comm, const brine_options *opts);

int brine_open_mpi_f(brine **out, const char *dir, MPI_Fint comm, const brine_options *opts)
{
    return brine_open_mpi(out, dir, MPI_Comm_f2c(comm), opts);
}
