using System;
using System.Text;

namespace Lora.Generators.Helpers;

/// <summary>A minimal indented writer for emitting readable C# (four spaces, <c>\n</c> line ends, deterministic).</summary>
internal sealed class IndentedTextWriter
{
    private readonly StringBuilder _builder = new();
    private int _indent;

    public void WriteLine(string line = "")
    {
        if (line.Length > 0)
            _builder.Append(' ', _indent * 4).Append(line);
        _builder.Append('\n');
    }

    /// <summary>Writes <c>{</c>, indents, and returns a scope that writes the closing brace (plus <paramref name="suffix"/>).</summary>
    public Block Block(string suffix = "")
    {
        WriteLine("{");
        _indent++;
        return new Block(this, suffix);
    }

    public void Indent() => _indent++;

    public void Unindent() => _indent--;

    public override string ToString() => _builder.ToString();

    internal void Close(string suffix)
    {
        _indent--;
        WriteLine("}" + suffix);
    }
}

internal readonly struct Block : IDisposable
{
    private readonly IndentedTextWriter _writer;
    private readonly string _suffix;

    public Block(IndentedTextWriter writer, string suffix)
    {
        _writer = writer;
        _suffix = suffix;
    }

    public void Dispose() => _writer.Close(_suffix);
}
