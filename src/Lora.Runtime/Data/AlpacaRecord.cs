namespace Lora.Data;

/// <summary>
/// A Stanford Alpaca record <c>{"instruction", "input", "output"}</c>. A missing or null input is
/// <see cref="string.Empty"/>, which selects the template's no-input variant.
/// </summary>
public sealed record AlpacaRecord(string Instruction, string Input, string Output) : DataRecord;
