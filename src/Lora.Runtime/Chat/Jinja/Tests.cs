namespace Lora.Chat.Jinja;

/// <summary>jinja2's builtin tests (jinja2 <c>tests.py</c>): <c>x is defined</c>, <c>is none</c>, <c>is string</c>, …</summary>
internal static class Tests
{
    public static bool? Apply(string name, object? v, IReadOnlyList<object?> args)
    {
        object? Arg0() => args.Count > 0 ? args[0] : throw new InvalidOperationException($"test '{name}' needs an argument");
        return name switch
        {
            "defined" => v is not Undefined,
            "undefined" => v is Undefined,
            "none" => v is null,
            "boolean" => v is bool,
            "true" => v is true,
            "false" => v is false,
            "string" => v is string,
            "number" => v is long or double,
            "integer" => v is long,
            "float" => v is double,
            "mapping" => v is Dictionary<string, object?> or Namespace,
            "sequence" => v is string or List<object?> or PyTuple or Dictionary<string, object?>,
            "iterable" => v is string or List<object?> or PyTuple or Dictionary<string, object?>,
            "callable" => v is Callable,
            "odd" => Py.ToLong(v) % 2 != 0,
            "even" => Py.ToLong(v) % 2 == 0,
            "divisibleby" => Py.ToLong(v) % Py.ToLong(Arg0()) == 0,
            "eq" or "equalto" or "==" => Py.Equals(v, Arg0()),
            "ne" or "!=" => !Py.Equals(v, Arg0()),
            "lt" or "lessthan" or "<" => Py.Compare(v, Arg0()) < 0,
            "le" or "<=" => Py.Compare(v, Arg0()) <= 0,
            "gt" or "greaterthan" or ">" => Py.Compare(v, Arg0()) > 0,
            "ge" or ">=" => Py.Compare(v, Arg0()) >= 0,
            "in" => Operators.Contains(Arg0(), v),
            "sameas" => ReferenceEquals(v, Arg0()) || (v is null && Arg0() is null) || (v is bool a && Arg0() is bool b && a == b),
            "lower" => v is string s && s.ToLowerInvariant() == s,
            "upper" => v is string s && s.ToUpperInvariant() == s,
            _ => null,
        };
    }
}
