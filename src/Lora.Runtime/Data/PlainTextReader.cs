namespace Lora.Data;

/// <summary>Streams a plain-text file as <see cref="TextLine"/>s, keeping each line's break (run_clm's
/// <c>keep_linebreaks</c>); the last line has none.</summary>
internal static class PlainTextReader
{
    public static IEnumerable<TextLine> Read(string path)
    {
        using var reader = new StreamReader(path, detectEncodingFromByteOrderMarks: true);
        long lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            var text = reader.EndOfStream ? line : line + "\n";
            yield return new TextLine(text) { Location = $"{path}:{lineNumber}" };
        }
    }
}
