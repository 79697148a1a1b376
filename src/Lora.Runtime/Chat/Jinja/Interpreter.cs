using System.Globalization;
using System.Text;

namespace Lora.Chat.Jinja;

/// <summary>
/// Renders a parsed template. Scoping follows jinja2: a <c>for</c> loop has its own frame (a <c>set</c> inside it is
/// gone after the loop — templates use <c>namespace()</c> for that), <c>if</c> has none, a macro call gets a frame
/// over the frame it was defined in. Lookups of missing names and attributes give <see cref="Undefined"/>.
/// </summary>
internal sealed class Interpreter
{
    private readonly string _origin;

    public Interpreter(string origin) => _origin = origin;

    private sealed class Frame(Frame? parent)
    {
        public Dictionary<string, object?> Vars { get; } = new(StringComparer.Ordinal);

        public Frame? Parent { get; } = parent;

        public bool TryGet(string name, out object? value)
        {
            for (var f = this; f is not null; f = f.Parent)
            {
                if (f.Vars.TryGetValue(name, out value))
                {
                    return true;
                }
            }

            value = null;
            return false;
        }
    }

    private sealed class BreakSignal : Exception;

    private sealed class ContinueSignal : Exception;

    public string Render(IReadOnlyList<Stmt> body, IReadOnlyDictionary<string, object?> globals)
    {
        var root = new Frame(null);
        foreach (var (k, v) in globals)
        {
            root.Vars[k] = v;
        }

        var sb = new StringBuilder();
        Exec(body, new Frame(root), sb);
        return sb.ToString();
    }

    private TemplateException Error(Node node, string message) => new($"{_origin} line {node.Line}: {message}", node.Line);

    private void Exec(IReadOnlyList<Stmt> body, Frame frame, StringBuilder output)
    {
        foreach (var stmt in body)
        {
            Exec(stmt, frame, output);
        }
    }

    private void Exec(Stmt stmt, Frame frame, StringBuilder output)
    {
        switch (stmt)
        {
            case OutputText t:
                output.Append(t.Text);
                break;
            case OutputExpr o:
                output.Append(Py.Str(Eval(o.Value, frame)));
                break;
            case IfStmt s:
                foreach (var (test, branch) in s.Branches)
                {
                    if (Py.Truthy(Eval(test, frame)))
                    {
                        Exec(branch, frame, output);
                        return;
                    }
                }

                if (s.Else is not null)
                {
                    Exec(s.Else, frame, output);
                }

                break;
            case ForStmt f:
                ExecFor(f, frame, output);
                break;
            case SetStmt s:
                ExecSet(s, frame);
                break;
            case MacroStmt m:
                frame.Vars[m.Name] = MakeMacro(m, frame);
                break;
            case FilterBlock fb:
            {
                var inner = new StringBuilder();
                Exec(fb.Body, frame, inner);
                output.Append(Py.Str(ApplyFilter(fb, fb.Name, inner.ToString(), fb.Args.Select(a => Eval(a, frame)).ToList(), new Dictionary<string, object?>())));
                break;
            }

            case CallBlock cb:
            {
                // {% call macro(args) %}body{% endcall %}: the macro's caller() renders the body here.
                var call = cb.Call;
                var kwargs = call.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, frame), StringComparer.Ordinal);
                kwargs["caller"] = new Callable("caller", (_, _) =>
                {
                    var sb = new StringBuilder();
                    Exec(cb.Body, new Frame(frame), sb);
                    return sb.ToString();
                });
                output.Append(Py.Str(Call(call, Eval(call.Target, frame), EvalArgs(call.Args, frame), kwargs)));
                break;
            }

            case GenerationBlock g:
                Exec(g.Body, frame, output);
                break;
            case BreakStmt:
                throw new BreakSignal();
            case ContinueStmt:
                throw new ContinueSignal();
            default:
                throw Error(stmt, $"cannot execute {stmt.GetType().Name}");
        }
    }

    private void ExecFor(ForStmt f, Frame frame, StringBuilder output)
    {
        var source = Eval(f.Iterable, frame);
        IReadOnlyList<object?> items;
        try
        {
            items = Py.Iterate(source);
        }
        catch (InvalidOperationException e)
        {
            throw Error(f, e.Message);
        }

        var loopFrame = new Frame(frame);
        if (f.Filter is not null)
        {
            // {% for x in xs if cond %}: the loop (and loop.length) only sees the items that pass.
            var kept = new List<object?>();
            foreach (var item in items)
            {
                Bind(f, loopFrame, item);
                if (Py.Truthy(Eval(f.Filter, loopFrame)))
                {
                    kept.Add(item);
                }
            }

            items = kept;
        }

        if (items.Count == 0)
        {
            if (f.Else is not null)
            {
                Exec(f.Else, frame, output);
            }

            return;
        }

        var loop = new LoopInfo(items);
        loopFrame.Vars["loop"] = loop;
        for (var i = 0; i < items.Count; i++)
        {
            loop.Index0 = i;
            Bind(f, loopFrame, items[i]);
            try
            {
                Exec(f.Body, loopFrame, output);
            }
            catch (ContinueSignal)
            {
            }
            catch (BreakSignal)
            {
                break;
            }
        }
    }

    private void Bind(ForStmt f, Frame frame, object? item)
    {
        if (f.Targets.Count == 1)
        {
            frame.Vars[f.Targets[0]] = item;
            return;
        }

        var parts = Py.Sequence(item) ?? throw Error(f, $"cannot unpack {Py.TypeName(item)} into {f.Targets.Count} names");
        if (parts.Count != f.Targets.Count)
        {
            throw Error(f, $"cannot unpack {parts.Count} values into {f.Targets.Count} names");
        }

        for (var i = 0; i < parts.Count; i++)
        {
            frame.Vars[f.Targets[i]] = parts[i];
        }
    }

    private void ExecSet(SetStmt s, Frame frame)
    {
        object? value;
        if (s.Body is not null)
        {
            var sb = new StringBuilder();
            Exec(s.Body, frame, sb);
            value = sb.ToString();
        }
        else
        {
            value = Eval(s.Value!, frame);
        }

        if (s.Attribute is not null)
        {
            if (!frame.TryGet(s.Targets[0], out var target) || target is not Namespace ns)
            {
                throw Error(s, $"cannot assign attribute '{s.Attribute}' on '{s.Targets[0]}': only a namespace() object takes attribute assignment");
            }

            ns.Attributes[s.Attribute] = value;
            return;
        }

        if (s.Targets.Count == 1)
        {
            frame.Vars[s.Targets[0]] = value;
            return;
        }

        var parts = Py.Sequence(value) ?? throw Error(s, $"cannot unpack {Py.TypeName(value)}");
        if (parts.Count != s.Targets.Count)
        {
            throw Error(s, $"cannot unpack {parts.Count} values into {s.Targets.Count} names");
        }

        for (var i = 0; i < parts.Count; i++)
        {
            frame.Vars[s.Targets[i]] = parts[i];
        }
    }

    private Callable MakeMacro(MacroStmt m, Frame definedIn) => new(m.Name, (args, kwargs) =>
    {
        var frame = new Frame(definedIn);
        if (args.Count > m.Parameters.Count)
        {
            throw Error(m, $"macro '{m.Name}' takes {m.Parameters.Count} arguments, {args.Count} given");
        }

        for (var i = 0; i < m.Parameters.Count; i++)
        {
            var (name, dflt) = m.Parameters[i];
            frame.Vars[name] = i < args.Count ? args[i]
                : kwargs.TryGetValue(name, out var kw) ? kw
                : dflt is not null ? Eval(dflt, definedIn)
                : new Undefined(name);
        }

        if (kwargs.TryGetValue("caller", out var caller))
        {
            frame.Vars["caller"] = caller;
        }

        frame.Vars["varargs"] = new List<object?>();
        frame.Vars["kwargs"] = kwargs.Where(kv => kv.Key != "caller" && m.Parameters.All(p => p.Name != kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var sb = new StringBuilder();
        Exec(m.Body, frame, sb);
        return sb.ToString();
    });

    private object? Eval(Expr expr, Frame frame)
    {
        try
        {
            return EvalCore(expr, frame);
        }
        catch (InvalidOperationException e)
        {
            throw Error(expr, e.Message);
        }
    }

    private object? EvalCore(Expr expr, Frame frame)
    {
        switch (expr)
        {
            case Literal l:
                return l.Value;
            case NameExpr n:
                return frame.TryGet(n.Name, out var v) ? v : new Undefined(n.Name);
            case ListExpr l:
                return l.Items.Select(i => Eval(i, frame)).ToList();
            case TupleExpr t:
                return new PyTuple(t.Items.Select(i => Eval(i, frame)).ToList());
            case DictExpr d:
            {
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, frame);
                    dict[key as string ?? Py.Str(key)] = Eval(val, frame);
                }

                return dict;
            }

            case GetAttr a:
                return GetAttribute(a, Eval(a.Target, frame), a.Name);
            case GetItem g:
                return Subscript(g, Eval(g.Target, frame), g.Index, frame);
            case CallExpr c:
                return Call(c, Eval(c.Target, frame), EvalArgs(c.Args, frame), c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, frame), StringComparer.Ordinal));
            case FilterExpr f:
                return ApplyFilter(f, f.Name, Eval(f.Target, frame), f.Args.Select(x => Eval(x, frame)).ToList(), f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, frame), StringComparer.Ordinal));
            case TestExpr t:
            {
                var result = Tests.Apply(t.Name, Eval(t.Target, frame), t.Args.Select(x => Eval(x, frame)).ToList())
                    ?? throw Error(t, $"no test named '{t.Name}'");
                return t.Negated ? !result : result;
            }

            case UnaryExpr u:
            {
                var operand = Eval(u.Operand, frame);
                return u.Op switch
                {
                    "not" => !Py.Truthy(operand),
                    "-" => operand switch
                    {
                        long x => (object)(-x),
                        double x => -x,
                        bool x => x ? -1L : 0L,
                        _ => throw Error(u, $"bad operand type for unary -: '{Py.TypeName(operand)}'"),
                    },
                    _ => Py.IsNumber(operand) ? operand : throw Error(u, $"bad operand type for unary +: '{Py.TypeName(operand)}'"),
                };
            }

            case BinaryExpr b when b.Op == "and":
            {
                var left = Eval(b.Left, frame);
                return Py.Truthy(left) ? Eval(b.Right, frame) : left;
            }

            case BinaryExpr b when b.Op == "or":
            {
                var left = Eval(b.Left, frame);
                return Py.Truthy(left) ? left : Eval(b.Right, frame);
            }

            case BinaryExpr b:
                return Operators.Binary(b.Op, Eval(b.Left, frame), Eval(b.Right, frame));
            case CompareExpr c:
            {
                var left = Eval(c.First, frame);
                foreach (var (op, operandExpr) in c.Rest)
                {
                    var right = Eval(operandExpr, frame);
                    if (!Operators.Compare(op, left, right))
                    {
                        return false;
                    }

                    left = right;
                }

                return true;
            }

            case CondExpr c:
                return Py.Truthy(Eval(c.Test, frame)) ? Eval(c.Then, frame) : c.Else is null ? new Undefined("(inline if)") : Eval(c.Else, frame);
            case SliceExpr:
                throw Error(expr, "a slice is only valid inside []");
            default:
                throw Error(expr, $"cannot evaluate {expr.GetType().Name}");
        }
    }

    // Positional arguments, with *iterable expanded (Python call unpacking).
    private List<object?> EvalArgs(IReadOnlyList<Expr> args, Frame frame)
    {
        var values = new List<object?>();
        foreach (var arg in args)
        {
            if (arg is StarredExpr star)
            {
                values.AddRange(Py.Iterate(Eval(star.Value, frame)));
            }
            else
            {
                values.Add(Eval(arg, frame));
            }
        }

        return values;
    }

    // jinja2 Environment.getattr: the attribute first (methods of str/dict, namespace and loop attributes), then the item.
    private object? GetAttribute(Node at, object? target, string name)
    {
        switch (target)
        {
            case Undefined u:
                throw Error(at, $"'{u.Name}' is undefined");
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var v) ? v : new Undefined(name);
            case LoopInfo loop:
                return loop.Get(name);
            case Dictionary<string, object?> d:
                return (object?)Methods.Bind(d, name) ?? (d.TryGetValue(name, out var item) ? item : new Undefined(name));
            default:
                return (object?)Methods.Bind(target, name) ?? new Undefined(name);
        }
    }

    // jinja2 Environment.getitem: the item first, then the attribute.
    private object? Subscript(GetItem at, object? target, Expr indexExpr, Frame frame)
    {
        if (target is Undefined u)
        {
            throw Error(at, $"'{u.Name}' is undefined");
        }

        if (indexExpr is SliceExpr s)
        {
            long? Bound(Expr? e) => e is null ? null : Eval(e, frame) is var x && x is null ? null : Py.ToLong(x);
            var (start, stop, step) = (Bound(s.Start), Bound(s.Stop), Bound(s.Step));
            switch (target)
            {
                case string str:
                {
                    var cps = Py.CodePoints(str);
                    return string.Concat(Py.SliceIndices(cps.Count, start, stop, step).Select(i => cps[i]));
                }

                case List<object?> list:
                    return Py.SliceIndices(list.Count, start, stop, step).Select(i => list[i]).ToList();
                case PyTuple t:
                    return new PyTuple(Py.SliceIndices(t.Items.Count, start, stop, step).Select(i => t.Items[i]).ToList());
                default:
                    throw Error(at, $"'{Py.TypeName(target)}' object is not subscriptable");
            }
        }

        var index = Eval(indexExpr, frame);
        switch (target)
        {
            case Dictionary<string, object?> d:
                return index is string key && d.TryGetValue(key, out var value) ? value : index is string k2 ? (object?)Methods.Bind(d, k2) ?? new Undefined(k2) : new Undefined(Py.Str(index));
            case Namespace or LoopInfo when index is string name:
                return GetAttribute(at, target, name);
            case string or List<object?> or PyTuple when Py.IsInteger(index):
            {
                var items = target is string str ? Py.CodePoints(str).Cast<object?>().ToList() : Py.Sequence(target)!;
                var i = Py.ToLong(index);
                if (i < 0)
                {
                    i += items.Count;
                }

                return i >= 0 && i < items.Count ? items[(int)i] : new Undefined($"[{Py.Str(index)}]");
            }

            case string or List<object?> or PyTuple when index is string name:
                return (object?)Methods.Bind(target, name) ?? new Undefined(name);
            case null:
                throw Error(at, "'NoneType' object is not subscriptable");
            default:
                return new Undefined(Py.Str(index));
        }
    }

    private object? Call(CallExpr at, object? target, List<object?> args, Dictionary<string, object?> kwargs)
    {
        if (target is Callable c)
        {
            try
            {
                return c.Body(args, kwargs);
            }
            catch (TemplateException)
            {
                throw;
            }
            catch (RaisedException e)
            {
                throw new TemplateException(e.Message, at.Line, raisedByTemplate: true);
            }
        }

        throw target is Undefined u
            ? Error(at, $"'{u.Name}' is undefined")
            : Error(at, $"'{Py.TypeName(target)}' object is not callable");
    }

    private object? ApplyFilter(Node at, string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        try
        {
            return Filters.TryApply(name, value, args, kwargs, out var result) ? result : throw Error(at, $"no filter named '{name}'");
        }
        catch (InvalidOperationException e)
        {
            throw Error(at, e.Message);
        }
    }
}

/// <summary>Thrown by the <c>raise_exception</c> global; becomes a <see cref="TemplateException"/> with the template's message.</summary>
internal sealed class RaisedException(string message) : Exception(message);
