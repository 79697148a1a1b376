namespace Lora.Chat.Jinja;

/// <summary>Python's binary operators and comparisons as Jinja2 evaluates them (jinja2 passes them to Python).</summary>
internal static class Operators
{
    public static object? Binary(string op, object? a, object? b)
    {
        if (op == "~")
        {
            return Py.Str(a) + Py.Str(b);
        }

        if (a is Undefined ua)
        {
            throw new InvalidOperationException($"'{ua.Name}' is undefined");
        }

        if (b is Undefined ub)
        {
            throw new InvalidOperationException($"'{ub.Name}' is undefined");
        }

        switch (op)
        {
            case "+":
                return (a, b) switch
                {
                    (string x, string y) => (object)(x + y),
                    (List<object?> x, List<object?> y) => (object)x.Concat(y).ToList(),
                    (PyTuple x, PyTuple y) => new PyTuple([.. x.Items, .. y.Items]),
                    _ when Py.IsNumber(a) && Py.IsNumber(b) => Py.IsInteger(a) && Py.IsInteger(b) ? Py.ToLong(a) + Py.ToLong(b) : (object)(Py.ToDouble(a) + Py.ToDouble(b)),
                    _ => throw Unsupported(op, a, b),
                };
            case "-":
                return Numeric(op, a, b, (x, y) => x - y, (x, y) => x - y);
            case "*":
                if (a is string s && Py.IsInteger(b))
                {
                    return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, Py.ToLong(b))));
                }

                if (a is List<object?> l && Py.IsInteger(b))
                {
                    return Enumerable.Repeat(l, (int)Math.Max(0, Py.ToLong(b))).SelectMany(x => x).ToList();
                }

                return Numeric(op, a, b, (x, y) => x * y, (x, y) => x * y);
            case "/":
                if (!Py.IsNumber(a) || !Py.IsNumber(b))
                {
                    throw Unsupported(op, a, b);
                }

                return Py.ToDouble(b) == 0 ? throw new InvalidOperationException("division by zero") : Py.ToDouble(a) / Py.ToDouble(b);
            case "//":
                return Numeric(op, a, b, (x, y) => y == 0 ? throw new InvalidOperationException("integer division or modulo by zero") : FloorDiv(x, y), (x, y) => Math.Floor(x / y));
            case "%":
                if (a is string format)
                {
                    return Filters.PercentFormat(format, b is PyTuple t ? t.Items : [b]);
                }

                return Numeric(op, a, b, (x, y) => y == 0 ? throw new InvalidOperationException("integer division or modulo by zero") : x - (y * FloorDiv(x, y)), (x, y) => x - (y * Math.Floor(x / y)));
            case "**":
                if (Py.IsInteger(a) && Py.IsInteger(b) && Py.ToLong(b) >= 0)
                {
                    long result = 1;
                    for (var i = 0L; i < Py.ToLong(b); i++)
                    {
                        result = checked(result * Py.ToLong(a));
                    }

                    return result;
                }

                return Numeric(op, a, b, (x, y) => (long)Math.Pow(x, y), Math.Pow, forceFloat: true);
            default:
                throw new InvalidOperationException($"unknown operator '{op}'");
        }
    }

    private static long FloorDiv(long x, long y)
    {
        var q = x / y;
        return (x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static object Numeric(string op, object? a, object? b, Func<long, long, long> ints, Func<double, double, double> floats, bool forceFloat = false)
    {
        if (!Py.IsNumber(a) || !Py.IsNumber(b))
        {
            throw Unsupported(op, a, b);
        }

        return !forceFloat && Py.IsInteger(a) && Py.IsInteger(b) ? ints(Py.ToLong(a), Py.ToLong(b)) : (object)floats(Py.ToDouble(a), Py.ToDouble(b));
    }

    private static InvalidOperationException Unsupported(string op, object? a, object? b) =>
        new($"unsupported operand type(s) for {op}: '{Py.TypeName(a)}' and '{Py.TypeName(b)}'");

    public static bool Compare(string op, object? a, object? b) => op switch
    {
        "==" => Py.Equals(a, b),
        "!=" => !Py.Equals(a, b),
        "<" => Py.Compare(a, b) < 0,
        ">" => Py.Compare(a, b) > 0,
        "<=" => Py.Compare(a, b) <= 0,
        ">=" => Py.Compare(a, b) >= 0,
        "in" => Contains(b, a),
        "notin" => !Contains(b, a),
        _ => throw new InvalidOperationException($"unknown comparison '{op}'"),
    };

    public static bool Contains(object? container, object? item) => container switch
    {
        string s when item is string sub => s.Contains(sub, StringComparison.Ordinal),
        string => throw new InvalidOperationException($"'in <string>' requires string as left operand, not {Py.TypeName(item)}"),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        List<object?> l => l.Any(x => Py.Equals(x, item)),
        PyTuple t => t.Items.Any(x => Py.Equals(x, item)),
        Undefined => false, // jinja2's Undefined iterates as empty
        _ => throw new InvalidOperationException($"argument of type '{Py.TypeName(container)}' is not iterable"),
    };
}
