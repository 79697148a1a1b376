namespace Lora.Generation;

/// <summary>Why a sequence stopped.</summary>
public enum FinishReason
{
    /// <summary>Reached <see cref="GenerationOptions.MaxNewTokens"/>.</summary>
    Length,

    /// <summary>Produced one of <see cref="GenerationOptions.StopTokenIds"/> (included in the tokens).</summary>
    StopToken,

    /// <summary>The caller's stop condition (e.g. a stop string) matched.</summary>
    StopCondition,
}

/// <summary>The new tokens of one sequence (the prompt excluded) and why it stopped.</summary>
public sealed record GeneratedSequence(IReadOnlyList<int> Tokens, FinishReason Reason);
