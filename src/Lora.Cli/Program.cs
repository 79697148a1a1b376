using Lora.Cli;
using Lora.Distributed;

// Under mpirun: MPI_Finalize after success; after an error, MPI_Abort so the other ranks stop now, not at their timeout.
return DataParallel.Finish(LoraCli.Run(args, Console.Out, Console.Error));
