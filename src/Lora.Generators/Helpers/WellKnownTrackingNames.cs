namespace Lora.Generators.Helpers;

/// <summary>Tracking names of the generator's pipeline steps (for incrementality tests).</summary>
public static class WellKnownTrackingNames
{
    /// <summary>The transform: a <c>[Lora]</c> class → its model spec (null when the plan is invalid).</summary>
    public const string Execute = nameof(Execute);

    /// <summary>The valid specs that reach the emitter.</summary>
    public const string Output = nameof(Output);
}
