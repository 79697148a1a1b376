using System.Globalization;

namespace Lora.Chat.Jinja;

/// <summary>
/// Recursive-descent parser for the Jinja2 subset chat templates use, with jinja2's precedence (jinja2
/// <c>parser.py</c>: <c>parse_expression</c> → condexpr → or → and → not → compare → math1 (+ -) → concat (~) →
/// math2 (* / // %) → pow (**) → unary (- +) → primary, postfix (. [] ()), then filters (|) and tests (is)).
/// Statements: if/elif/else, for (targets, inline if, else, loop variables), set (plain, tuple, namespace
/// attribute, block), macro, filter blocks, break/continue (jinja2.ext.loopcontrols, enabled by transformers),
/// generation (transformers' AssistantTracker), raw (in the lexer).
/// </summary>
internal sealed class Parser
{
    private readonly List<Token> _tokens;
    private readonly string _origin;
    private int _pos;

    private Parser(List<Token> tokens, string origin)
    {
        _tokens = tokens;
        _origin = origin;
    }

    public static IReadOnlyList<Stmt> Parse(string source, string origin)
    {
        var parser = new Parser(Lexer.Tokenize(source, origin), origin);
        var body = parser.ParseStatements([]);
        if (parser.Peek.Kind != TokenKind.End)
        {
            throw parser.Error($"unexpected '{parser.PeekAt(1).Value}' tag with no block to close");
        }

        return body;
    }

    private Token Peek => _tokens[_pos];

    private Token PeekAt(int offset) => _tokens[Math.Min(_pos + offset, _tokens.Count - 1)];

    private Token Next() => _tokens[_pos++];

    private TemplateException Error(string message, Token? at = null)
    {
        var line = (at ?? Peek).Line;
        return new TemplateException($"{_origin} line {line}: {message}", line);
    }

    private void Expect(TokenKind kind, string? value = null)
    {
        var token = Peek;
        if (token.Kind != kind || (value is not null && token.Value != value))
        {
            var wanted = value is not null ? $"'{value}'" : kind switch
            {
                TokenKind.BlockEnd => "'%}'",
                TokenKind.VariableEnd => "'}}'",
                TokenKind.Name => "a name",
                _ => kind.ToString(),
            };
            throw Error($"expected {wanted}, got {token}");
        }

        _pos++;
    }

    private string ExpectName()
    {
        if (Peek.Kind != TokenKind.Name)
        {
            throw Error($"expected a name, got {Peek}");
        }

        return Next().Value;
    }

    // Parses statements until a block tag whose keyword is one of `enders` (left unconsumed, at its '{%').
    private List<Stmt> ParseStatements(string[] enders)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var token = Peek;
            switch (token.Kind)
            {
                case TokenKind.End:
                    if (enders.Length > 0)
                    {
                        throw Error($"unexpected end of template: expected {string.Join(" or ", enders.Select(e => $"'{{% {e} %}}'"))}");
                    }

                    return body;
                case TokenKind.Data:
                    body.Add(new OutputText(Next().Value, token.Line));
                    break;
                case TokenKind.VariableBegin:
                    Next();
                    body.Add(new OutputExpr(ParseExpression(), token.Line));
                    Expect(TokenKind.VariableEnd);
                    break;
                case TokenKind.BlockBegin:
                    var keyword = PeekAt(1);
                    if (keyword.Kind == TokenKind.Name && enders.Contains(keyword.Value))
                    {
                        return body;
                    }

                    Next();
                    body.Add(ParseStatement());
                    break;
                default:
                    throw Error($"unexpected {token}");
            }
        }
    }

    private Stmt ParseStatement()
    {
        var token = Peek;
        if (token.Kind != TokenKind.Name)
        {
            throw Error($"expected a statement keyword, got {token}");
        }

        Next();
        switch (token.Value)
        {
            case "if": return ParseIf(token.Line);
            case "for": return ParseFor(token.Line);
            case "set": return ParseSet(token.Line);
            case "macro": return ParseMacro(token.Line);
            case "filter":
            {
                var name = ExpectName();
                var args = new List<Expr>();
                if (Peek.IsOperator("("))
                {
                    Next();
                    ParseArguments(args, []);
                }

                Expect(TokenKind.BlockEnd);
                var body = ParseStatements(["endfilter"]);
                CloseBlock("endfilter");
                return new FilterBlock(name, args, body, token.Line);
            }

            case "call":
            {
                var target = ParsePostfix(ParsePrimary());
                if (target is not CallExpr call)
                {
                    throw Error("expected a macro call after 'call'", token);
                }

                Expect(TokenKind.BlockEnd);
                var body = ParseStatements(["endcall"]);
                CloseBlock("endcall");
                return new CallBlock(call, body, token.Line);
            }

            case "generation":
            {
                Expect(TokenKind.BlockEnd);
                var body = ParseStatements(["endgeneration"]);
                CloseBlock("endgeneration");
                return new GenerationBlock(body, token.Line);
            }

            case "break":
                Expect(TokenKind.BlockEnd);
                return new BreakStmt(token.Line);
            case "continue":
                Expect(TokenKind.BlockEnd);
                return new ContinueStmt(token.Line);
            default:
                throw Error($"unknown tag '{token.Value}' (supported: if, for, set, macro, call, filter, generation, break, continue, raw)", token);
        }
    }

    private void CloseBlock(string keyword)
    {
        Expect(TokenKind.BlockBegin);
        Expect(TokenKind.Name, keyword);
        Expect(TokenKind.BlockEnd);
    }

    private IfStmt ParseIf(int line)
    {
        var branches = new List<(Expr, IReadOnlyList<Stmt>)>();
        var test = ParseExpression();
        Expect(TokenKind.BlockEnd);
        while (true)
        {
            var body = ParseStatements(["elif", "else", "endif"]);
            branches.Add((test, body));
            Expect(TokenKind.BlockBegin);
            var keyword = Next().Value;
            if (keyword == "elif")
            {
                test = ParseExpression();
                Expect(TokenKind.BlockEnd);
                continue;
            }

            if (keyword == "else")
            {
                Expect(TokenKind.BlockEnd);
                var elseBody = ParseStatements(["endif"]);
                CloseBlock("endif");
                return new IfStmt(branches, elseBody, line);
            }

            Expect(TokenKind.BlockEnd);
            return new IfStmt(branches, null, line);
        }
    }

    private ForStmt ParseFor(int line)
    {
        var targets = new List<string> { ExpectName() };
        while (Peek.IsOperator(","))
        {
            Next();
            targets.Add(ExpectName());
        }

        Expect(TokenKind.Name, "in");
        var iterable = ParseExpression(withCondition: false);
        Expr? filter = null;
        if (Peek.IsName("if"))
        {
            Next();
            filter = ParseExpression();
        }

        if (Peek.IsName("recursive"))
        {
            throw Error("recursive loops are not supported");
        }

        Expect(TokenKind.BlockEnd);
        var body = ParseStatements(["else", "endfor"]);
        IReadOnlyList<Stmt>? elseBody = null;
        Expect(TokenKind.BlockBegin);
        if (Next().Value == "else")
        {
            Expect(TokenKind.BlockEnd);
            elseBody = ParseStatements(["endfor"]);
            CloseBlock("endfor");
        }
        else
        {
            Expect(TokenKind.BlockEnd);
        }

        return new ForStmt(targets, iterable, filter, body, elseBody, line);
    }

    private SetStmt ParseSet(int line)
    {
        var first = ExpectName();
        if (Peek.IsOperator("."))
        {
            Next();
            var attribute = ExpectName();
            Expect(TokenKind.Operator, "=");
            var value = ParseExpression();
            Expect(TokenKind.BlockEnd);
            return new SetStmt([first], attribute, value, null, line);
        }

        var targets = new List<string> { first };
        while (Peek.IsOperator(","))
        {
            Next();
            targets.Add(ExpectName());
        }

        if (Peek.Kind == TokenKind.BlockEnd && targets.Count == 1)
        {
            Next();
            var body = ParseStatements(["endset"]);
            CloseBlock("endset");
            return new SetStmt(targets, null, null, body, line);
        }

        Expect(TokenKind.Operator, "=");
        var expr = ParseTupleOrExpression();
        Expect(TokenKind.BlockEnd);
        return new SetStmt(targets, null, expr, null, line);
    }

    private MacroStmt ParseMacro(int line)
    {
        var name = ExpectName();
        Expect(TokenKind.Operator, "(");
        var parameters = new List<(string, Expr?)>();
        while (!Peek.IsOperator(")"))
        {
            if (parameters.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
                if (Peek.IsOperator(")"))
                {
                    break;
                }
            }

            var parameter = ExpectName();
            Expr? value = null;
            if (Peek.IsOperator("="))
            {
                Next();
                value = ParseExpression();
            }

            parameters.Add((parameter, value));
        }

        Next();
        Expect(TokenKind.BlockEnd);
        var body = ParseStatements(["endmacro"]);
        CloseBlock("endmacro");
        return new MacroStmt(name, parameters, body, line);
    }

    // `a, b` without brackets is a tuple (set statements and for targets' iterables).
    private Expr ParseTupleOrExpression()
    {
        var line = Peek.Line;
        var first = ParseExpression();
        if (!Peek.IsOperator(","))
        {
            return first;
        }

        var items = new List<Expr> { first };
        while (Peek.IsOperator(","))
        {
            Next();
            if (Peek.Kind == TokenKind.BlockEnd)
            {
                break;
            }

            items.Add(ParseExpression());
        }

        return new TupleExpr(items, line);
    }

    private Expr ParseExpression(bool withCondition = true)
    {
        var expr = ParseOr();
        if (!withCondition)
        {
            return expr;
        }

        while (Peek.IsName("if"))
        {
            var line = Next().Line;
            var test = ParseOr();
            Expr? otherwise = null;
            if (Peek.IsName("else"))
            {
                Next();
                otherwise = ParseExpression();
            }

            expr = new CondExpr(test, expr, otherwise, line);
        }

        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Peek.IsName("or"))
        {
            var line = Next().Line;
            left = new BinaryExpr("or", left, ParseAnd(), line);
        }

        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Peek.IsName("and"))
        {
            var line = Next().Line;
            left = new BinaryExpr("and", left, ParseNot(), line);
        }

        return left;
    }

    private Expr ParseNot()
    {
        if (Peek.IsName("not"))
        {
            var line = Next().Line;
            return new UnaryExpr("not", ParseNot(), line);
        }

        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var line = Peek.Line;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var token = Peek;
            if (token.Kind == TokenKind.Operator && token.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                Next();
                rest.Add((token.Value, ParseMath1()));
            }
            else if (token.IsName("in"))
            {
                Next();
                rest.Add(("in", ParseMath1()));
            }
            else if (token.IsName("not") && PeekAt(1).IsName("in"))
            {
                Next();
                Next();
                rest.Add(("notin", ParseMath1()));
            }
            else
            {
                break;
            }
        }

        return rest.Count == 0 ? first : new CompareExpr(first, rest, line);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "+" or "-")
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParseConcat(), token.Line);
        }

        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Peek.IsOperator("~"))
        {
            var line = Next().Line;
            left = new BinaryExpr("~", left, ParseMath2(), line);
        }

        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "*" or "/" or "//" or "%")
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParsePow(), token.Line);
        }

        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (Peek.IsOperator("**"))
        {
            var line = Next().Line;
            left = new BinaryExpr("**", left, ParseUnary(withFilter: true), line);
        }

        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        var token = Peek;
        Expr node;
        if (token.Kind == TokenKind.Operator && token.Value is "-" or "+")
        {
            Next();
            node = new UnaryExpr(token.Value, ParseUnary(withFilter: false), token.Line);
        }
        else
        {
            node = ParsePostfix(ParsePrimary());
        }

        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new Literal(true, token.Line),
                    "false" or "False" => new Literal(false, token.Line),
                    "none" or "None" => new Literal(null, token.Line),
                    _ => new NameExpr(token.Value, token.Line),
                };
            case TokenKind.String:
            {
                var text = token.Value;
                while (Peek.Kind == TokenKind.String)
                {
                    text += Next().Value; // adjacent literals concatenate, as in Python
                }

                return new Literal(text, token.Line);
            }

            case TokenKind.Integer:
                return new Literal(long.Parse(token.Value, CultureInfo.InvariantCulture), token.Line);
            case TokenKind.Float:
                return new Literal(double.Parse(token.Value, CultureInfo.InvariantCulture), token.Line);
            case TokenKind.Operator when token.Value == "(":
            {
                if (Peek.IsOperator(")"))
                {
                    Next();
                    return new TupleExpr([], token.Line);
                }

                var first = ParseExpression();
                if (Peek.IsOperator(")"))
                {
                    Next();
                    return first;
                }

                var items = new List<Expr> { first };
                while (Peek.IsOperator(","))
                {
                    Next();
                    if (Peek.IsOperator(")"))
                    {
                        break;
                    }

                    items.Add(ParseExpression());
                }

                Expect(TokenKind.Operator, ")");
                return new TupleExpr(items, token.Line);
            }

            case TokenKind.Operator when token.Value == "[":
            {
                var items = new List<Expr>();
                while (!Peek.IsOperator("]"))
                {
                    if (items.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                        if (Peek.IsOperator("]"))
                        {
                            break;
                        }
                    }

                    items.Add(ParseExpression());
                }

                Next();
                return new ListExpr(items, token.Line);
            }

            case TokenKind.Operator when token.Value == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!Peek.IsOperator("}"))
                {
                    if (items.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                        if (Peek.IsOperator("}"))
                        {
                            break;
                        }
                    }

                    var key = ParseExpression();
                    Expect(TokenKind.Operator, ":");
                    items.Add((key, ParseExpression()));
                }

                Next();
                return new DictExpr(items, token.Line);
            }

            default:
                _pos--;
                throw Error($"unexpected {token}");
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var token = Peek;
            if (token.IsOperator("."))
            {
                Next();
                var name = Peek.Kind == TokenKind.Integer ? Next().Value : ExpectName();
                node = long.TryParse(name, out var index) ? new GetItem(node, new Literal(index, token.Line), token.Line) : new GetAttr(node, name, token.Line);
            }
            else if (token.IsOperator("["))
            {
                Next();
                node = new GetItem(node, ParseSubscript(token.Line), token.Line);
                Expect(TokenKind.Operator, "]");
            }
            else if (token.IsOperator("("))
            {
                Next();
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                ParseArguments(args, kwargs);
                node = new CallExpr(node, args, kwargs, token.Line);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(int line)
    {
        Expr? start = null;
        if (!Peek.IsOperator(":"))
        {
            start = ParseExpression();
            if (!Peek.IsOperator(":"))
            {
                return start;
            }
        }

        Next();
        Expr? stop = null;
        Expr? step = null;
        if (!Peek.IsOperator("]") && !Peek.IsOperator(":"))
        {
            stop = ParseExpression();
        }

        if (Peek.IsOperator(":"))
        {
            Next();
            if (!Peek.IsOperator("]"))
            {
                step = ParseExpression();
            }
        }

        return new SliceExpr(start, stop, step, line);
    }

    // After '(' : positional and keyword arguments up to and including ')'.
    private void ParseArguments(List<Expr> args, List<(string, Expr)> kwargs)
    {
        while (!Peek.IsOperator(")"))
        {
            if (args.Count + kwargs.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
                if (Peek.IsOperator(")"))
                {
                    break;
                }
            }

            if (Peek.Kind == TokenKind.Name && PeekAt(1).IsOperator("="))
            {
                var name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else if (Peek.IsOperator("*"))
            {
                var line = Next().Line;
                args.Add(new StarredExpr(ParseExpression(), line));
            }
            else
            {
                if (kwargs.Count > 0)
                {
                    throw Error("positional argument after a keyword argument");
                }

                args.Add(ParseExpression());
            }
        }

        Next();
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            var token = Peek;
            if (token.IsOperator("|"))
            {
                Next();
                var name = ExpectName();
                while (Peek.IsOperator("."))
                {
                    Next();
                    name += "." + ExpectName();
                }

                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                if (Peek.IsOperator("("))
                {
                    Next();
                    ParseArguments(args, kwargs);
                }

                node = new FilterExpr(node, name, args, kwargs, token.Line);
            }
            else if (token.IsName("is"))
            {
                Next();
                var negated = false;
                if (Peek.IsName("not"))
                {
                    Next();
                    negated = true;
                }

                var name = ExpectName();
                var args = new List<Expr>();
                if (Peek.IsOperator("("))
                {
                    Next();
                    ParseArguments(args, []);
                }
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                         || (Peek.Kind == TokenKind.Operator && Peek.Value is "[" or "{")
                         || (Peek.Kind == TokenKind.Name && Peek.Value is not ("else" or "or" or "and" or "if" or "in" or "not" or "is")))
                {
                    // jinja2 parse_test: one argument without parentheses ("is divisibleby 3", "is equalto 'x'").
                    args.Add(ParsePostfix(ParsePrimary()));
                }

                node = new TestExpr(node, name, args, negated, token.Line);
            }
            else if (token.IsOperator("("))
            {
                node = ParsePostfix(node);
            }
            else
            {
                return node;
            }
        }
    }
}
