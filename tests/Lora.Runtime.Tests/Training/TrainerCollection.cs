namespace Lora.Runtime.Tests.Training;

/// <summary>
/// Tests that compare runs bit for bit (resume equivalence) or count live tensors: torch's default generator and the
/// dispose-scope statistics are process-wide, so these run alone, not beside other test classes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrainerCollection
{
    public const string Name = "Trainer (not parallel)";
}
