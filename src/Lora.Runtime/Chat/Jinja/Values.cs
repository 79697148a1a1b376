using System.Globalization;
using System.Text;

namespace Lora.Chat.Jinja;

/// <summary>
/// The values templates see, as Python objects behave under Jinja2: <c>null</c> is None, <see cref="Undefined"/> is
/// jinja2's default <c>Undefined</c> (prints as "", iterates as empty, is false; an attribute of it is an error),
/// <c>bool</c>, <c>long</c>, <c>double</c>, <c>string</c>, <c>List&lt;object?&gt;</c> (list),
/// <see cref="PyTuple"/>, <c>Dictionary&lt;string, object?&gt;</c> (dict, insertion-ordered), <see cref="Namespace"/>,
/// <see cref="Callable"/> (functions, macros, bound methods), <see cref="LoopInfo"/>.
/// </summary>
internal sealed class Undefined
{
    public Undefined(string name) => Name = name;

    public string Name { get; }

    public override string ToString() => "";
}

internal sealed class PyTuple(IReadOnlyList<object?> items)
{
    public IReadOnlyList<object?> Items { get; } = items;
}

/// <summary>jinja2's <c>namespace(...)</c>: the one object whose attributes a template may assign in a loop.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

internal delegate object? CallableBody(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs);

internal sealed class Callable(string name, CallableBody body)
{
    public string Name { get; } = name;

    public CallableBody Body { get; } = body;
}

/// <summary>jinja2's <c>LoopContext</c>: <c>loop.index</c>, <c>index0</c>, <c>revindex</c>, <c>revindex0</c>,
/// <c>first</c>, <c>last</c>, <c>length</c>, <c>previtem</c>, <c>nextitem</c>, <c>cycle(...)</c>.</summary>
internal sealed class LoopInfo(IReadOnlyList<object?> items)
{
    public int Index0 { get; set; }

    public IReadOnlyList<object?> Items { get; } = items;

    public object? Get(string name) => name switch
    {
        "index" => (long)(Index0 + 1),
        "index0" => (long)Index0,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("previtem"),
        "nextitem" => Index0 + 1 < Items.Count ? Items[Index0 + 1] : new Undefined("nextitem"),
        "depth" => 1L,
        "depth0" => 0L,
        "cycle" => new Callable("cycle", (args, _) => args.Count == 0 ? throw new InvalidOperationException("no items for cycling given") : args[Index0 % args.Count]),
        _ => new Undefined(name),
    };
}

internal static class Py
{
    public static bool Truthy(object? v) => v switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        PyTuple t => t.Items.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        PyTuple => "tuple",
        Dictionary<string, object?> => "dict",
        Namespace => "Namespace",
        Callable => "function",
        LoopInfo => "LoopContext",
        _ => v.GetType().Name,
    };

    /// <summary>Python's <c>str(v)</c> (what <c>{{ v }}</c> prints).</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    /// <summary>Python's <c>repr(v)</c> (how values inside lists and dicts print).</summary>
    public static string Repr(object? v)
    {
        switch (v)
        {
            case null: return "None";
            case Undefined: return "";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FloatRepr(d);
            case string s: return StringRepr(s);
            case List<object?> list: return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case PyTuple t: return t.Items.Count == 1 ? $"({Repr(t.Items[0])},)" : "(" + string.Join(", ", t.Items.Select(Repr)) + ")";
            case Dictionary<string, object?> d: return "{" + string.Join(", ", d.Select(kv => $"{StringRepr(kv.Key)}: {Repr(kv.Value)}")) + "}";
            case Namespace n: return "<Namespace " + string.Join(", ", n.Attributes.Select(kv => $"{kv.Key}={Repr(kv.Value)}")) + ">";
            case Callable c: return $"<function {c.Name}>";
            default: return v.ToString() ?? "";
        }
    }

    /// <summary>Python's float repr (<c>float_repr_style</c> 'short'): the shortest digits that round-trip, fixed
    /// notation with ".0" on integral values when the decimal exponent is in [-4, 16), else "d.ddde+XX".</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        if (d == 0)
        {
            return double.IsNegative(d) ? "-0.0" : "0.0";
        }

        // Shortest round-trip digits from .NET ("R"), split into digits D and exponent p: |d| = 0.D x 10^p.
        var r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        var exp = 0;
        var e = r.IndexOf('E');
        if (e >= 0)
        {
            exp = int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
            r = r[..e];
        }

        var dot = r.IndexOf('.');
        var intPart = dot < 0 ? r : r[..dot];
        var frac = dot < 0 ? "" : r[(dot + 1)..];
        var digits = (intPart + frac).TrimStart('0');
        var leadingZeros = (intPart + frac).Length - digits.Length;
        var p = intPart.Length - leadingZeros + exp;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        var sign = d < 0 ? "-" : "";
        var sciExp = p - 1;
        if (sciExp < -4 || sciExp >= 16)
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return sign + mantissa + "e" + (sciExp < 0 ? "-" : "+") + Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture);
        }

        if (p <= 0)
        {
            return sign + "0." + new string('0', -p) + digits;
        }

        if (p >= digits.Length)
        {
            return sign + digits + new string('0', p - digits.Length) + ".0";
        }

        return sign + digits[..p] + "." + digits[p..];
    }

    public static string StringRepr(string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder().Append(quote);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote)
                    {
                        sb.Append('\\').Append(c);
                    }
                    else if (c < 0x20 || c == 0x7f)
                    {
                        sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        return sb.Append(quote).ToString();
    }

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException($"expected a number, got {TypeName(v)}"),
    };

    public static bool IsInteger(object? v) => v is long or bool;

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException($"expected an integer, got {TypeName(v)}"),
    };

    /// <summary>Python <c>==</c> (1 == 1.0 == True; lists and dicts element-wise).</summary>
    public static new bool Equals(object? a, object? b)
    {
        if (a is Undefined || b is Undefined)
        {
            return a is Undefined && b is Undefined;
        }

        if (a is null || b is null)
        {
            return a is null && b is null;
        }

        if (IsNumber(a) && IsNumber(b))
        {
            return IsInteger(a) && IsInteger(b) ? ToLong(a) == ToLong(b) : ToDouble(a) == ToDouble(b);
        }

        return (a, b) switch
        {
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Equals(p.First, p.Second)),
            (PyTuple x, PyTuple y) => x.Items.Count == y.Items.Count && x.Items.Zip(y.Items).All(p => Equals(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out var o) && Equals(kv.Value, o)),
            _ => ReferenceEquals(a, b),
        };
    }

    /// <summary>Python ordering (&lt; etc.) for numbers, strings and sequences.</summary>
    public static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInteger(a) && IsInteger(b) ? ToLong(a).CompareTo(ToLong(b)) : ToDouble(a).CompareTo(ToDouble(b));
        }

        if (a is string x && b is string y)
        {
            return Math.Sign(string.CompareOrdinal(x, y));
        }

        var (la, lb) = (Sequence(a), Sequence(b));
        if (la is not null && lb is not null && a?.GetType() == b?.GetType())
        {
            for (var i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                var c = Compare(la[i], lb[i]);
                if (c != 0)
                {
                    return c;
                }
            }

            return la.Count.CompareTo(lb.Count);
        }

        throw new InvalidOperationException($"'<' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static IReadOnlyList<object?>? Sequence(object? v) => v switch
    {
        List<object?> l => l,
        PyTuple t => t.Items,
        _ => null,
    };

    /// <summary>What <c>for x in v</c> iterates: list/tuple items, dict keys, string characters (code points).</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        Undefined => [],
        List<object?> l => l,
        PyTuple t => t.Items,
        Dictionary<string, object?> d => d.Keys.Cast<object?>().ToList(),
        string s => CodePoints(s).Cast<object?>().ToList(),
        null => throw new InvalidOperationException("'NoneType' object is not iterable"),
        _ => throw new InvalidOperationException($"'{TypeName(v)}' object is not iterable"),
    };

    /// <summary>A string as Python sees it: one element per code point (surrogate pairs kept together).</summary>
    public static List<string> CodePoints(string s)
    {
        var result = new List<string>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                result.Add(s[i].ToString());
            }
        }

        return result;
    }

    public static long Length(object? v) => v switch
    {
        string s => s.Length - s.Count(char.IsLowSurrogate),
        List<object?> l => l.Count,
        PyTuple t => t.Items.Count,
        Dictionary<string, object?> d => d.Count,
        Undefined => 0,
        _ => throw new InvalidOperationException($"object of type '{TypeName(v)}' has no len()"),
    };

    /// <summary>Python slicing <c>[start:stop:step]</c> over a sequence of n items: the selected indices.</summary>
    public static List<int> SliceIndices(int n, long? start, long? stop, long? step)
    {
        var st = step ?? 1;
        if (st == 0)
        {
            throw new InvalidOperationException("slice step cannot be zero");
        }

        long Clamp(long? v, long dflt, long lo, long hi)
        {
            if (v is null)
            {
                return dflt;
            }

            var x = v.Value < 0 ? v.Value + n : v.Value;
            return Math.Clamp(x, lo, hi);
        }

        var result = new List<int>();
        if (st > 0)
        {
            var a = Clamp(start, 0, 0, n);
            var b = Clamp(stop, n, 0, n);
            for (var i = a; i < b; i += st)
            {
                result.Add((int)i);
            }
        }
        else
        {
            var a = Clamp(start, n - 1, -1, n - 1);
            var b = Clamp(stop, -1, -1, n - 1);
            for (var i = a; i > b; i += st)
            {
                result.Add((int)i);
            }
        }

        return result;
    }

    /// <summary>Converts JSON (messages, tools, kwargs) into template values.</summary>
    public static object? FromJson(System.Text.Json.JsonElement e) => e.ValueKind switch
    {
        System.Text.Json.JsonValueKind.Null or System.Text.Json.JsonValueKind.Undefined => null,
        System.Text.Json.JsonValueKind.True => true,
        System.Text.Json.JsonValueKind.False => false,
        System.Text.Json.JsonValueKind.String => e.GetString(),
        System.Text.Json.JsonValueKind.Number => e.TryGetInt64(out var l) && !e.GetRawText().Contains('.') && !e.GetRawText().Contains('e') && !e.GetRawText().Contains('E') ? l : e.GetDouble(),
        System.Text.Json.JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        System.Text.Json.JsonValueKind.Object => e.EnumerateObject().Aggregate(new Dictionary<string, object?>(StringComparer.Ordinal), (d, p) =>
        {
            d[p.Name] = FromJson(p.Value);
            return d;
        }),
        _ => null,
    };
}
