using System.Text.Json;

namespace Lora.Data;

/// <summary>
/// Streams the elements of a top-level JSON array (Stanford's <c>alpaca_data.json</c> layout) without loading the
/// file: a <see cref="Utf8JsonReader"/> runs over a refilled buffer, each element is skipped over to find its
/// bytes, and only that element is parsed. The buffer grows only when a single element does not fit. Each element
/// comes with the 1-based line its opening brace is on.
/// </summary>
internal sealed class JsonArrayReader : IDisposable
{
    private readonly string _path;
    private readonly Stream _stream;
    private byte[] _buffer;
    private int _start;                 // first byte not yet consumed
    private int _end;                   // end of valid data
    private bool _final;                // the stream is exhausted
    private bool _begun;                // the opening '[' was read
    private bool _firstRead = true;     // a byte order mark may start the file
    private JsonReaderState _state;
    private int _lineScan;              // buffer offset up to which newlines are counted
    private long _lineAtScan = 1;       // 1-based line at _lineScan

    private JsonArrayReader(string path, int bufferSize)
    {
        _path = path;
        _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        _buffer = new byte[bufferSize];
    }

    /// <summary>Each element as its own <see cref="JsonDocument"/> (disposed after the next one is requested).</summary>
    public static IEnumerable<(long Line, JsonElement Element)> Read(string path, int bufferSize = 1 << 16)
    {
        using var reader = new JsonArrayReader(path, bufferSize);
        while (reader.Next(out var line, out var bytes))
        {
            using var document = Parse(bytes, path, line);
            yield return (line, document.RootElement);
        }
    }

    private static JsonDocument Parse(ReadOnlyMemory<byte> bytes, string path, long line)
    {
        try
        {
            return JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new LoraException($"{path}:{line + (e.LineNumber ?? 0)}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>The next element's bytes (valid until the next call), or false at the closing bracket.</summary>
    private bool Next(out long line, out ReadOnlyMemory<byte> element)
    {
        try
        {
            return NextCore(out line, out element);
        }
        catch (JsonException e)
        {
            throw new LoraException($"{_path}:{(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message})", e);
        }
    }

    private bool NextCore(out long line, out ReadOnlyMemory<byte> element)
    {
        while (true)
        {
            var reader = new Utf8JsonReader(_buffer.AsSpan(_start, _end - _start), _final, _state);
            if (!reader.Read())
            {
                if (_final)
                {
                    if (!_begun)
                        throw new LoraException($"{_path}: no examples (the file is empty).");
                    line = 0;
                    element = default;
                    return false;
                }

                Refill();
                continue;
            }

            var tokenStart = _start + (int)reader.TokenStartIndex;
            if (!_begun)
            {
                if (reader.TokenType != JsonTokenType.StartArray)
                    throw new LoraException($"{_path}:{LineAt(tokenStart)}: expected a JSON array of records.");
                _begun = true;
                Commit(ref reader);
                continue;
            }

            if (reader.TokenType == JsonTokenType.EndArray && reader.CurrentDepth == 0)
            {
                Commit(ref reader);
                continue; // the next Read ends the data, or throws on trailing content
            }

            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && !reader.TrySkip())
            {
                Refill(); // the element is not complete in the buffer: read again from its start
                continue;
            }

            line = LineAt(tokenStart);
            element = _buffer.AsMemory(tokenStart, _start + (int)reader.BytesConsumed - tokenStart);
            Commit(ref reader);
            return true;
        }
    }

    private void Commit(ref Utf8JsonReader reader)
    {
        _start += (int)reader.BytesConsumed;
        _state = reader.CurrentState;
    }

    /// <summary>1-based line of a buffer offset; offsets are asked for in increasing order.</summary>
    private long LineAt(int offset)
    {
        _lineAtScan += _buffer.AsSpan(_lineScan, offset - _lineScan).Count((byte)'\n');
        _lineScan = offset;
        return _lineAtScan;
    }

    /// <summary>Drops consumed bytes, grows the buffer if it is full, and reads more of the file.</summary>
    private void Refill()
    {
        LineAt(_start);
        var remaining = _end - _start;
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, remaining);
            _start = 0;
            _end = remaining;
            _lineScan = 0;
        }

        if (_end == _buffer.Length)
            Array.Resize(ref _buffer, _buffer.Length * 2);

        var read = _stream.Read(_buffer, _end, _buffer.Length - _end);
        if (read == 0)
        {
            _final = true;
            return;
        }

        var first = _firstRead;
        _firstRead = false;
        _end += read;
        if (first && _end >= 3 && _buffer[0] == 0xEF && _buffer[1] == 0xBB && _buffer[2] == 0xBF)
            _start = _lineScan = 3; // UTF-8 byte order mark
    }

    public void Dispose() => _stream.Dispose();
}
