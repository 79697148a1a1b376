namespace Lora.Data;

/// <summary>
/// The kind of records a dataset file holds. <see cref="Auto"/> detects it from the file extension and the first
/// record's keys; any other value overrides the detection (the container, JSON array or JSON lines, is still read
/// from the file itself).
/// </summary>
public enum DataFormat
{
    Auto,

    /// <summary><c>{"instruction", "input", "output"}</c> records.</summary>
    Alpaca,

    /// <summary><c>{"messages": [{"role", "content"}]}</c> records.</summary>
    Chat,

    /// <summary><c>{"text"}</c> records, or a plain-text file (.txt) cut into blocks.</summary>
    Text,

    /// <summary><c>{"input_ids", "labels"?}</c> records, already tokenised.</summary>
    Tokenized,
}
