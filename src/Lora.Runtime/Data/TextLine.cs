namespace Lora.Data;

/// <summary>
/// One line (line break kept) of a plain-text file. The lines of a file are one token stream that is cut into
/// blocks of max_length tokens, as transformers' <c>run_clm.py</c> does; a line is not an example by itself.
/// </summary>
public sealed record TextLine(string Text) : DataRecord;
