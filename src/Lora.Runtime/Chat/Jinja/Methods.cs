using System.Text;

namespace Lora.Chat.Jinja;

/// <summary>
/// The Python methods templates call on values: <c>str</c> (strip/lstrip/rstrip, split/rsplit, startswith/endswith,
/// upper/lower/title/capitalize, replace, find/count, join, format, is*), <c>dict</c> (items, keys, values, get).
/// Mutating list methods are refused, as transformers' ImmutableSandboxedEnvironment refuses them.
/// </summary>
internal static class Methods
{
    public static Callable? Bind(object? target, string name) => target switch
    {
        string s => StringMethod(s, name),
        Dictionary<string, object?> d => DictMethod(d, name),
        List<object?> when name is "append" or "pop" or "extend" or "insert" or "remove" or "clear" or "sort" or "reverse" =>
            new Callable(name, (_, _) => throw new InvalidOperationException($"access to attribute '{name}' of 'list' object is unsafe (the sandbox keeps values immutable)")),
        _ => null,
    };

    private static Callable? DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => new Callable(name, (_, _) => d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList()),
        "keys" => new Callable(name, (_, _) => d.Keys.Cast<object?>().ToList()),
        "values" => new Callable(name, (_, _) => d.Values.ToList()),
        "get" => new Callable(name, (a, _) => a.Count > 0 && a[0] is string k && d.TryGetValue(k, out var v) ? v : a.Count > 1 ? a[1] : null),
        "update" or "pop" or "setdefault" or "clear" or "popitem" =>
            new Callable(name, (_, _) => throw new InvalidOperationException($"access to attribute '{name}' of 'dict' object is unsafe (the sandbox keeps values immutable)")),
        _ => null,
    };

    private static Callable? StringMethod(string s, string name) => name switch
    {
        "strip" => new(name, (a, _) => Strip(s, Chars(a), true, true)),
        "lstrip" => new(name, (a, _) => Strip(s, Chars(a), true, false)),
        "rstrip" => new(name, (a, _) => Strip(s, Chars(a), false, true)),
        "split" => new(name, (a, k) => Split(s, Arg(a, k, 0, "sep"), Arg(a, k, 1, "maxsplit") is { } m ? Py.ToLong(m) : -1)),
        "rsplit" => new(name, (a, k) => RSplit(s, Arg(a, k, 0, "sep"), Arg(a, k, 1, "maxsplit") is { } m ? Py.ToLong(m) : -1)),
        "splitlines" => new(name, (_, _) => s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).ToList() is var l && s.EndsWith('\n') ? l.Take(l.Count - 1).ToList() : l),
        "startswith" => new(name, (a, _) => Prefixes(a).Any(p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => new(name, (a, _) => Prefixes(a).Any(p => s.EndsWith(p, StringComparison.Ordinal))),
        "upper" => new(name, (_, _) => s.ToUpperInvariant()),
        "lower" => new(name, (_, _) => s.ToLowerInvariant()),
        "title" => new(name, (_, _) => PyTitle(s)),
        "capitalize" => new(name, (_, _) => Capitalize(s)),
        "replace" => new(name, (a, _) => Replace(s, (string)a[0]!, (string)a[1]!, a.Count > 2 ? Py.ToLong(a[2]) : -1)),
        "find" => new(name, (a, _) => (long)s.IndexOf((string)a[0]!, StringComparison.Ordinal)),
        "rfind" => new(name, (a, _) => (long)s.LastIndexOf((string)a[0]!, StringComparison.Ordinal)),
        "count" => new(name, (a, _) => (long)CountOf(s, (string)a[0]!)),
        "join" => new(name, (a, _) => string.Join(s, Py.Iterate(a[0]).Select(Py.Str))),
        "format" => new(name, (a, k) => Format(s, a, k)),
        "isdigit" => new(name, (_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => new(name, (_, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isalnum" => new(name, (_, _) => s.Length > 0 && s.All(char.IsLetterOrDigit)),
        "isspace" => new(name, (_, _) => s.Length > 0 && s.All(char.IsWhiteSpace)),
        "islower" => new(name, (_, _) => s.Any(char.IsLetter) && !s.Any(char.IsUpper)),
        "isupper" => new(name, (_, _) => s.Any(char.IsLetter) && !s.Any(char.IsLower)),
        _ => null,
    };

    private static object? Arg(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs, int index, string name) =>
        index < args.Count ? args[index] : kwargs.TryGetValue(name, out var v) ? v : null;

    private static string? Chars(IReadOnlyList<object?> args) => args.Count > 0 ? args[0] as string : null;

    private static IEnumerable<string> Prefixes(IReadOnlyList<object?> args) =>
        args.Count == 0 ? [] : args[0] is PyTuple t ? t.Items.Select(Py.Str) : [Py.Str(args[0])];

    /// <summary>Python <c>str.strip([chars])</c>: whitespace when chars is None.</summary>
    public static string Strip(string s, string? chars, bool left, bool right)
    {
        var start = 0;
        var end = s.Length;
        bool Strippable(char c) => chars is null ? char.IsWhiteSpace(c) : chars.Contains(c);
        if (left)
        {
            while (start < end && Strippable(s[start]))
            {
                start++;
            }
        }

        if (right)
        {
            while (end > start && Strippable(s[end - 1]))
            {
                end--;
            }
        }

        return s[start..end];
    }

    private static List<object?> Split(string s, object? sep, long maxsplit)
    {
        if (sep is null)
        {
            // Runs of whitespace, no empty strings.
            var result = new List<object?>();
            var i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i]))
                {
                    i++;
                }

                if (i >= s.Length)
                {
                    break;
                }

                if (maxsplit >= 0 && result.Count == maxsplit)
                {
                    result.Add(s[i..].TrimEnd());
                    break;
                }

                var start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i]))
                {
                    i++;
                }

                result.Add(s[start..i]);
            }

            return result;
        }

        var separator = Py.Str(sep);
        if (separator.Length == 0)
        {
            throw new InvalidOperationException("empty separator");
        }

        var parts = maxsplit < 0 ? s.Split(separator) : s.Split(separator, (int)maxsplit + 1);
        return parts.Cast<object?>().ToList();
    }

    private static List<object?> RSplit(string s, object? sep, long maxsplit)
    {
        if (maxsplit < 0 || sep is null)
        {
            return Split(s, sep, maxsplit);
        }

        var separator = Py.Str(sep);
        var result = new List<object?>();
        var end = s.Length;
        while (result.Count < maxsplit)
        {
            var at = s.LastIndexOf(separator, end - 1 < 0 ? 0 : end - 1, StringComparison.Ordinal);
            if (at < 0 || end == 0)
            {
                break;
            }

            result.Insert(0, s[(at + separator.Length)..end]);
            end = at;
        }

        result.Insert(0, s[..end]);
        return result;
    }

    private static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0)
        {
            return old.Length == 0 ? string.Join(replacement, Py.CodePoints(s).Prepend("").Append("")) : s.Replace(old, replacement, StringComparison.Ordinal);
        }

        var sb = new StringBuilder();
        var pos = 0;
        for (var n = 0; n < count; n++)
        {
            var at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            sb.Append(s, pos, at - pos).Append(replacement);
            pos = at + old.Length;
        }

        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    private static int CountOf(string s, string sub)
    {
        if (sub.Length == 0)
        {
            return s.Length + 1;
        }

        var n = 0;
        for (var at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }

    /// <summary>Python <c>str.title()</c>: a letter after a non-letter is upper-cased, other letters lower-cased.</summary>
    public static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }

        return sb.ToString();
    }

    public static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    // Python str.format with {} / {0} / {name} fields (no format specs beyond the bare field).
    private static string Format(string s, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '{' && i + 1 < s.Length && s[i + 1] == '{')
            {
                sb.Append('{');
                i++;
            }
            else if (s[i] == '}' && i + 1 < s.Length && s[i + 1] == '}')
            {
                sb.Append('}');
                i++;
            }
            else if (s[i] == '{')
            {
                var close = s.IndexOf('}', i);
                var field = s[(i + 1)..close];
                var colon = field.IndexOf(':');
                if (colon >= 0)
                {
                    field = field[..colon];
                }

                var value = field.Length == 0 ? args[auto++] : int.TryParse(field, out var n) ? args[n] : kwargs[field];
                sb.Append(Py.Str(value));
                i = close;
            }
            else
            {
                sb.Append(s[i]);
            }
        }

        return sb.ToString();
    }
}
