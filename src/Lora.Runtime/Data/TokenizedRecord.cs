namespace Lora.Data;

/// <summary>A row of a pre-tokenised JSONL file (see <see cref="TokenizedJsonlReader"/>), passed through as is.</summary>
public sealed record TokenizedRecord(TokenizedExample Example) : DataRecord;
