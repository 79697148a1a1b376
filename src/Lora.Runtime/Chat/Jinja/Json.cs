using System.Globalization;
using System.Text;

namespace Lora.Chat.Jinja;

/// <summary>
/// Python's <c>json.dumps</c> as transformers' <c>tojson</c> filter calls it
/// (<c>chat_template_utils._cached_compile_jinja_template.tojson</c>: <c>ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False</c>): separators ", " / ": " (", " becomes "," when indenting), non-ASCII kept,
/// only '"', '\' and control characters escaped, floats as Python's repr, tuples as arrays.
/// </summary>
internal static class Json
{
    public static string Dumps(object? value, int? indent, string? itemSeparator, string? keySeparator, bool sortKeys, bool ensureAscii = false)
    {
        var item = itemSeparator ?? (indent is null ? ", " : ",");
        var key = keySeparator ?? ": ";
        var sb = new StringBuilder();
        Write(sb, value, indent, item, key, sortKeys, ensureAscii, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? v, int? indent, string item, string key, bool sort, bool ascii, int depth)
    {
        switch (v)
        {
            case null:
                sb.Append("null");
                return;
            case bool b:
                sb.Append(b ? "true" : "false");
                return;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                return;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : Py.FloatRepr(d));
                return;
            case string s:
                WriteString(sb, s, ascii);
                return;
            case Undefined u:
                throw new InvalidOperationException($"Object of type Undefined ('{u.Name}') is not JSON serializable");
            case Dictionary<string, object?> dict:
            {
                var pairs = sort ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : dict.ToList();
                WriteContainer(sb, '{', '}', pairs.Count, indent, item, depth, i =>
                {
                    WriteString(sb, pairs[i].Key, ascii);
                    sb.Append(key);
                    Write(sb, pairs[i].Value, indent, item, key, sort, ascii, depth + 1);
                });
                return;
            }

            case Namespace ns:
                throw new InvalidOperationException("Object of type Namespace is not JSON serializable");
            default:
            {
                var seq = Py.Sequence(v) ?? throw new InvalidOperationException($"Object of type {Py.TypeName(v)} is not JSON serializable");
                WriteContainer(sb, '[', ']', seq.Count, indent, item, depth, i => Write(sb, seq[i], indent, item, key, sort, ascii, depth + 1));
                return;
            }
        }
    }

    private static void WriteContainer(StringBuilder sb, char open, char close, int count, int? indent, string item, int depth, Action<int> writeItem)
    {
        sb.Append(open);
        if (count == 0)
        {
            sb.Append(close);
            return;
        }

        for (var i = 0; i < count; i++)
        {
            if (i > 0)
            {
                sb.Append(item);
            }

            if (indent is { } n)
            {
                sb.Append('\n').Append(' ', n * (depth + 1));
            }

            writeItem(i);
        }

        if (indent is { } m)
        {
            sb.Append('\n').Append(' ', m * depth);
        }

        sb.Append(close);
    }

    private static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7e))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }
}
