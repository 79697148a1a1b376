namespace Lora.Data;

/// <summary>
/// A document of a JSONL <c>{"text": ...}</c> file: one example, every token a target, ended with EOS (as TRL does
/// for language-modelling rows).
/// </summary>
public sealed record TextRecord(string Text) : DataRecord;
