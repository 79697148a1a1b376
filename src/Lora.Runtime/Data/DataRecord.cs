namespace Lora.Data;

/// <summary>
/// One record of a dataset file before tokenisation. <see cref="Location"/> is <c>file:line</c>, so that errors
/// found later (a chat a template cannot render) still point at the record.
/// </summary>
public abstract record DataRecord
{
    /// <summary><c>file:line</c> of the record, or empty for records built in code.</summary>
    public string Location { get; init; } = string.Empty;
}
