using System.Globalization;
using System.Net;
using System.Text;

namespace Lora.Chat.Jinja;

/// <summary>
/// jinja2's builtin filters that chat templates use (jinja2 <c>filters.py</c>, same names and arguments), with
/// transformers' <c>tojson</c> in place of jinja2's (which would HTML-escape).
/// </summary>
internal static class Filters
{
    public static bool TryApply(string name, object? v, List<object?> args, Dictionary<string, object?> kwargs, out object? result)
    {
        object? Arg(int i, string n, object? dflt = null) => i < args.Count ? args[i] : kwargs.TryGetValue(n, out var x) ? x : dflt;
        result = name switch
        {
            "trim" => Methods.Strip(Py.Str(v), Arg(0, "chars") as string, true, true),
            "upper" => Py.Str(v).ToUpperInvariant(),
            "lower" => Py.Str(v).ToLowerInvariant(),
            "capitalize" => Methods.Capitalize(Py.Str(v)),
            "title" => Title(Py.Str(v)),
            "length" or "count" => Py.Length(v),
            "string" => Py.Str(v),
            "safe" => v,
            "e" or "escape" or "forceescape" => WebUtility.HtmlEncode(Py.Str(v)).Replace("&#39;", "&#39;"),
            "tojson" => Json.Dumps(v, Arg(0, "indent") is { } ind ? (int)Py.ToLong(ind) : null,
                Arg(1, "separators") is PyTuple sep ? Py.Str(sep.Items[0]) : Arg(1, "separators") is List<object?> sl ? Py.Str(sl[0]) : null,
                Arg(1, "separators") is PyTuple sep2 ? Py.Str(sep2.Items[1]) : Arg(1, "separators") is List<object?> sl2 ? Py.Str(sl2[1]) : null,
                Py.Truthy(Arg(2, "sort_keys", false)), Py.Truthy(kwargs.GetValueOrDefault("ensure_ascii", false))),
            "default" or "d" => v is Undefined || (Py.Truthy(Arg(1, "boolean", false)) && !Py.Truthy(v)) ? Arg(0, "default_value", "") : v,
            "first" => Py.Iterate(v) is { Count: > 0 } f ? f[0] : new Undefined("first"),
            "last" => Py.Iterate(v) is { Count: > 0 } l ? l[^1] : new Undefined("last"),
            "list" => Py.Iterate(v).ToList(),
            "join" => string.Join(Py.Str(Arg(0, "d", "")), Attribute(Py.Iterate(v), Arg(1, "attribute")).Select(Py.Str)),
            "reverse" => v is string s ? string.Concat(Py.CodePoints(s).AsEnumerable().Reverse()) : Py.Iterate(v).Reverse().ToList(),
            "sort" => Sort(Py.Iterate(v), Py.Truthy(Arg(0, "reverse", false)), Py.Truthy(Arg(1, "case_sensitive", false)), Arg(2, "attribute")),
            "unique" => Unique(Py.Iterate(v), Py.Truthy(Arg(0, "case_sensitive", false)), Arg(1, "attribute")),
            "min" => Sort(Py.Iterate(v), false, Py.Truthy(Arg(0, "case_sensitive", false)), Arg(1, "attribute")) is { Count: > 0 } mn ? mn[0] : new Undefined("min"),
            "max" => Sort(Py.Iterate(v), true, Py.Truthy(Arg(0, "case_sensitive", false)), Arg(1, "attribute")) is { Count: > 0 } mx ? mx[0] : new Undefined("max"),
            "sum" => Attribute(Py.Iterate(v), Arg(0, "attribute")).Aggregate(Arg(1, "start", 0L), (acc, x) => Operators.Binary("+", acc, x)),
            "int" => ToInt(v, Arg(0, "default", 0L)),
            "float" => ToFloat(v, Arg(0, "default", 0.0)),
            "abs" => v switch { long l => (object)Math.Abs(l), double d => Math.Abs(d), bool b => b ? 1L : 0L, _ => throw new InvalidOperationException($"bad operand type for abs(): '{Py.TypeName(v)}'") },
            "round" => Round(Py.ToDouble(v), (int)Py.ToLong(Arg(0, "precision", 0L)), Py.Str(Arg(1, "method", "common"))),
            "replace" => Py.Str(v).Replace(Py.Str(Arg(0, "old")), Py.Str(Arg(1, "new")), StringComparison.Ordinal),
            "indent" => Indent(Py.Str(v), Arg(0, "width", 4L), Py.Truthy(Arg(1, "first", false)), Py.Truthy(Arg(2, "blank", false))),
            "wordcount" => (long)Py.Str(v).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length,
            "items" => v is Dictionary<string, object?> d ? d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList() : v is Undefined ? new List<object?>() : throw new InvalidOperationException($"can only get item pairs from a mapping, not {Py.TypeName(v)}"),
            "dictsort" => DictSort(v, Py.Truthy(Arg(0, "case_sensitive", false)), Py.Str(Arg(1, "by", "key")), Py.Truthy(Arg(2, "reverse", false))),
            "map" => Map(Py.Iterate(v), args, kwargs),
            "select" => Select(Py.Iterate(v), args, keep: true, attribute: false),
            "reject" => Select(Py.Iterate(v), args, keep: false, attribute: false),
            "selectattr" => Select(Py.Iterate(v), args, keep: true, attribute: true),
            "rejectattr" => Select(Py.Iterate(v), args, keep: false, attribute: true),
            "attr" => v is Dictionary<string, object?> ad && ad.TryGetValue(Py.Str(Arg(0, "name")), out var av) ? av : new Undefined(Py.Str(Arg(0, "name"))),
            "format" => PercentFormat(Py.Str(v), args),
            "center" => Center(Py.Str(v), (int)Py.ToLong(Arg(0, "width", 80L))),
            "truncate" => Truncate(Py.Str(v), (int)Py.ToLong(Arg(0, "length", 255L)), Py.Truthy(Arg(1, "killwords", false)), Py.Str(Arg(2, "end", "...")), (int)Py.ToLong(Arg(3, "leeway", 5L))),
            "batch" => Batch(Py.Iterate(v), (int)Py.ToLong(Arg(0, "linecount")), Arg(1, "fill_with")),
            _ => Missing,
        };
        if (ReferenceEquals(result, Missing))
        {
            result = null;
            return false;
        }

        return true;
    }

    private static readonly object Missing = new();

    // jinja2 do_title: words split at whitespace and -({[< , each capitalised.
    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        var atStart = true;
        foreach (var c in s)
        {
            sb.Append(atStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            atStart = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
        }

        return sb.ToString();
    }

    private static object? Lookup(object? item, string path)
    {
        foreach (var part in path.Split('.'))
        {
            item = item switch
            {
                Dictionary<string, object?> d => d.TryGetValue(part, out var x) ? x : new Undefined(part),
                Namespace ns => ns.Attributes.TryGetValue(part, out var x) ? x : new Undefined(part),
                _ when long.TryParse(part, out var i) && Py.Sequence(item) is { } seq => i < seq.Count ? seq[(int)i] : new Undefined(part),
                _ => new Undefined(part),
            };
        }

        return item;
    }

    private static IEnumerable<object?> Attribute(IEnumerable<object?> items, object? attribute) =>
        attribute is null ? items : items.Select(i => Lookup(i, Py.Str(attribute)));

    private static object? SortKey(object? v, bool caseSensitive) => !caseSensitive && v is string s ? s.ToLowerInvariant() : v;

    private static List<object?> Sort(IReadOnlyList<object?> items, bool reverse, bool caseSensitive, object? attribute)
    {
        var keyed = items.Select(i => (Item: i, Key: SortKey(attribute is null ? i : Lookup(i, Py.Str(attribute)), caseSensitive))).ToList();
        var sorted = keyed.Order(Comparer<(object? Item, object? Key)>.Create((a, b) => Py.Compare(a.Key, b.Key))).Select(p => p.Item).ToList();
        if (reverse)
        {
            // Python's sort(reverse=True) is stable with respect to equal keys in their original order.
            sorted = keyed.OrderByDescending(p => p, Comparer<(object? Item, object? Key)>.Create((a, b) => Py.Compare(a.Key, b.Key))).Select(p => p.Item).ToList();
        }

        return sorted;
    }

    private static List<object?> Unique(IReadOnlyList<object?> items, bool caseSensitive, object? attribute)
    {
        var seen = new List<object?>();
        var result = new List<object?>();
        foreach (var item in items)
        {
            var key = SortKey(attribute is null ? item : Lookup(item, Py.Str(attribute)), caseSensitive);
            if (!seen.Any(s => Py.Equals(s, key)))
            {
                seen.Add(key);
                result.Add(item);
            }
        }

        return result;
    }

    private static object ToInt(object? v, object? dflt) => v switch
    {
        long l => l,
        bool b => b ? 1L : 0L,
        double d => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => (long)Math.Truncate(d),
        _ => dflt ?? 0L,
    };

    private static object ToFloat(object? v, object? dflt) => v switch
    {
        long l => (double)l,
        bool b => b ? 1.0 : 0.0,
        double d => d,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => dflt ?? 0.0,
    };

    private static double Round(double v, int precision, string method)
    {
        var factor = Math.Pow(10, precision);
        return method switch
        {
            "ceil" => Math.Ceiling(v * factor) / factor,
            "floor" => Math.Floor(v * factor) / factor,
            _ => Math.Round(v, precision, MidpointRounding.ToEven),
        };
    }

    // jinja2 do_indent: every line but the first (unless first=True), blank lines only with blank=True.
    private static string Indent(string s, object? width, bool first, bool blank)
    {
        var pad = width is string w ? w : new string(' ', (int)Py.ToLong(width));
        var newline = "\n";
        s += newline;
        var lines = s.Split(newline).ToList();
        lines.RemoveAt(lines.Count - 1);
        string rv;
        if (blank)
        {
            rv = string.Join(newline + pad, lines);
        }
        else
        {
            var sb = new StringBuilder(lines[0]);
            foreach (var line in lines.Skip(1))
            {
                sb.Append(newline);
                if (line.Length > 0)
                {
                    sb.Append(pad);
                }

                sb.Append(line);
            }

            rv = sb.ToString();
        }

        return first ? pad + rv : rv;
    }

    private static List<object?> DictSort(object? v, bool caseSensitive, string by, bool reverse)
    {
        if (v is not Dictionary<string, object?> d)
        {
            throw new InvalidOperationException($"dictsort needs a mapping, got {Py.TypeName(v)}");
        }

        var pairs = d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList();
        var index = by == "value" ? 1 : 0;
        var sorted = pairs.Order(Comparer<object?>.Create((a, b) => Py.Compare(SortKey(((PyTuple)a!).Items[index], caseSensitive), SortKey(((PyTuple)b!).Items[index], caseSensitive)))).ToList();
        if (reverse)
        {
            sorted.Reverse();
        }

        return sorted;
    }

    private static List<object?> Map(IReadOnlyList<object?> items, List<object?> args, Dictionary<string, object?> kwargs)
    {
        if (kwargs.TryGetValue("attribute", out var attribute))
        {
            var dflt = kwargs.GetValueOrDefault("default");
            return items.Select(i => Lookup(i, Py.Str(attribute)) is var x && x is Undefined && kwargs.ContainsKey("default") ? dflt : x).ToList();
        }

        if (args.Count == 0)
        {
            throw new InvalidOperationException("map needs a filter name or attribute=");
        }

        var filter = Py.Str(args[0]);
        return items.Select(i => TryApply(filter, i, args.Skip(1).ToList(), [], out var r) ? r : throw new InvalidOperationException($"no filter named '{filter}'")).ToList();
    }

    private static List<object?> Select(IReadOnlyList<object?> items, List<object?> args, bool keep, bool attribute)
    {
        var rest = args.Skip(attribute ? 1 : 0).ToList();
        var result = new List<object?>();
        foreach (var item in items)
        {
            var value = attribute ? Lookup(item, Py.Str(args[0])) : item;
            var pass = rest.Count == 0
                ? Py.Truthy(value)
                : Tests.Apply(Py.Str(rest[0]), value, rest.Skip(1).ToList()) ?? throw new InvalidOperationException($"no test named '{Py.Str(rest[0])}'");
            if (pass == keep)
            {
                result.Add(item);
            }
        }

        return result;
    }

    /// <summary>Python's <c>%</c> string formatting for %s, %r, %d, %i, %f and %%.</summary>
    public static string PercentFormat(string format, IReadOnlyList<object?> args)
    {
        var sb = new StringBuilder();
        var next = 0;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }

            var spec = format[++i];
            switch (spec)
            {
                case '%': sb.Append('%'); break;
                case 's': sb.Append(Py.Str(args[next++])); break;
                case 'r': sb.Append(Py.Repr(args[next++])); break;
                case 'd' or 'i': sb.Append(Py.ToLong(ToInt(args[next++], 0L)).ToString(CultureInfo.InvariantCulture)); break;
                case 'f': sb.Append(Py.ToDouble(args[next++]).ToString("F6", CultureInfo.InvariantCulture)); break;
                default: throw new InvalidOperationException($"unsupported format character '{spec}'");
            }
        }

        return sb.ToString();
    }

    private static string Center(string s, int width)
    {
        if (s.Length >= width)
        {
            return s;
        }

        var total = width - s.Length;
        var left = (total / 2) + (total & width & 1);
        return new string(' ', left) + s + new string(' ', total - left);
    }

    private static string Truncate(string s, int length, bool killwords, string end, int leeway)
    {
        if (s.Length <= length + leeway)
        {
            return s;
        }

        if (killwords)
        {
            return s[..(length - end.Length)] + end;
        }

        var cut = s[..(length - end.Length)];
        var space = cut.LastIndexOf(' ');
        return (space >= 0 ? cut[..space] : cut) + end;
    }

    private static List<object?> Batch(IReadOnlyList<object?> items, int count, object? fill)
    {
        var result = new List<object?>();
        for (var i = 0; i < items.Count; i += count)
        {
            var chunk = items.Skip(i).Take(count).ToList();
            if (fill is not null)
            {
                while (chunk.Count < count)
                {
                    chunk.Add(fill);
                }
            }

            result.Add(chunk);
        }

        return result;
    }
}
