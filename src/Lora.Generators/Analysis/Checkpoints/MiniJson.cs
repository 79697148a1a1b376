using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Lora.Generators.Analysis.Checkpoints;

/// <summary>
/// A minimal JSON reader for the checkpoint metadata the analyzer reads (<c>config.json</c>, safetensors headers and
/// index files): objects become <see cref="Dictionary{TKey, TValue}"/>, arrays <see cref="List{T}"/>, numbers
/// <see cref="double"/>. The analyzer runs inside the compiler and must not depend on System.Text.Json.
/// </summary>
internal sealed class MiniJson
{
    private readonly string _text;
    private int _at;

    private MiniJson(string text) => _text = text;

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> on malformed input.</summary>
    public static object? Parse(string text)
    {
        var reader = new MiniJson(text);
        var value = reader.Value();
        reader.SkipWhitespace();
        if (reader._at != text.Length)
            throw reader.Error("trailing characters");
        return value;
    }

    private object? Value()
    {
        SkipWhitespace();
        if (_at >= _text.Length)
            throw Error("unexpected end");
        switch (_text[_at])
        {
            case '{':
                return Object();
            case '[':
                return Array();
            case '"':
                return String();
            case 't':
                return Literal("true", true);
            case 'f':
                return Literal("false", false);
            case 'n':
                return Literal("null", null);
            default:
                return Number();
        }
    }

    private Dictionary<string, object?> Object()
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        _at++;
        SkipWhitespace();
        if (Peek('}'))
            return result;
        while (true)
        {
            SkipWhitespace();
            if (_at >= _text.Length || _text[_at] != '"')
                throw Error("expected a property name");
            var key = String();
            SkipWhitespace();
            Expect(':');
            result[key] = Value();
            SkipWhitespace();
            if (Peek('}'))
                return result;
            Expect(',');
        }
    }

    private List<object?> Array()
    {
        var result = new List<object?>();
        _at++;
        SkipWhitespace();
        if (Peek(']'))
            return result;
        while (true)
        {
            result.Add(Value());
            SkipWhitespace();
            if (Peek(']'))
                return result;
            Expect(',');
        }
    }

    private string String()
    {
        _at++;
        var builder = new StringBuilder();
        while (_at < _text.Length)
        {
            var c = _text[_at++];
            if (c == '"')
                return builder.ToString();
            if (c != '\\')
            {
                builder.Append(c);
                continue;
            }

            if (_at >= _text.Length)
                break;
            var e = _text[_at++];
            switch (e)
            {
                case 'n': builder.Append('\n'); break;
                case 't': builder.Append('\t'); break;
                case 'r': builder.Append('\r'); break;
                case 'b': builder.Append('\b'); break;
                case 'f': builder.Append('\f'); break;
                case 'u':
                    if (_at + 4 > _text.Length)
                        throw Error("bad \\u escape");
                    builder.Append((char)int.Parse(_text.Substring(_at, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    _at += 4;
                    break;
                default: builder.Append(e); break;
            }
        }

        throw Error("unterminated string");
    }

    private double Number()
    {
        var start = _at;
        while (_at < _text.Length && "+-0123456789.eE".IndexOf(_text[_at]) >= 0)
            _at++;
        if (start == _at || !double.TryParse(_text.Substring(start, _at - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            throw Error("unexpected character");
        return value;
    }

    private object? Literal(string word, object? value)
    {
        if (string.CompareOrdinal(_text, _at, word, 0, word.Length) != 0)
            throw Error("unexpected character");
        _at += word.Length;
        return value;
    }

    private bool Peek(char c)
    {
        if (_at < _text.Length && _text[_at] == c)
        {
            _at++;
            return true;
        }

        return false;
    }

    private void Expect(char c)
    {
        if (!Peek(c))
            throw Error($"expected '{c}'");
    }

    private void SkipWhitespace()
    {
        while (_at < _text.Length && char.IsWhiteSpace(_text[_at]))
            _at++;
    }

    private FormatException Error(string what) => new($"{what} at offset {_at}");
}
