namespace Lora.Data;

/// <summary>How records are laid out in a dataset file.</summary>
public enum DataLayout
{
    /// <summary>One JSON array of record objects (the Stanford <c>alpaca_data.json</c> layout).</summary>
    JsonArray,

    /// <summary>One JSON object per line (JSONL); blank lines are skipped.</summary>
    JsonLines,

    /// <summary>Raw text, read line by line.</summary>
    PlainText,
}
