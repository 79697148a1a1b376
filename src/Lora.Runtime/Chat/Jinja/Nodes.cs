namespace Lora.Chat.Jinja;

// The template's syntax tree: statements render, expressions evaluate. Node names follow jinja2's nodes.py.
internal abstract record Node(int Line);

internal abstract record Expr(int Line) : Node(Line);

internal sealed record Literal(object? Value, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

internal sealed record ListExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record TupleExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Items, int Line) : Expr(Line);

internal sealed record GetAttr(Expr Target, string Name, int Line) : Expr(Line);

internal sealed record GetItem(Expr Target, Expr Index, int Line) : Expr(Line);

internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal sealed record CallExpr(Expr Target, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);

internal sealed record FilterExpr(Expr Target, string Name, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);

internal sealed record TestExpr(Expr Target, string Name, IReadOnlyList<Expr> Args, bool Negated, int Line) : Expr(Line);

internal sealed record UnaryExpr(string Op, Expr Operand, int Line) : Expr(Line);

internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line) : Expr(Line);

internal sealed record CompareExpr(Expr First, IReadOnlyList<(string Op, Expr Operand)> Rest, int Line) : Expr(Line);

internal sealed record CondExpr(Expr Test, Expr Then, Expr? Else, int Line) : Expr(Line);

internal abstract record Stmt(int Line) : Node(Line);

internal sealed record OutputText(string Text, int Line) : Stmt(Line);

internal sealed record OutputExpr(Expr Value, int Line) : Stmt(Line);

internal sealed record IfStmt(IReadOnlyList<(Expr Test, IReadOnlyList<Stmt> Body)> Branches, IReadOnlyList<Stmt>? Else, int Line) : Stmt(Line);

internal sealed record ForStmt(IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Stmt> Body, IReadOnlyList<Stmt>? Else, int Line) : Stmt(Line);

/// <summary><c>{% set a = … %}</c>, <c>{% set a, b = … %}</c>, <c>{% set ns.attr = … %}</c>, or a block set (Value null, Body set).</summary>
internal sealed record SetStmt(IReadOnlyList<string> Targets, string? Attribute, Expr? Value, IReadOnlyList<Stmt>? Body, int Line) : Stmt(Line);

internal sealed record MacroStmt(string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

internal sealed record FilterBlock(string Name, IReadOnlyList<Expr> Args, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

/// <summary>transformers' <c>{% generation %}</c> (AssistantTracker): renders its body.</summary>
internal sealed record GenerationBlock(IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

internal sealed record BreakStmt(int Line) : Stmt(Line);

internal sealed record ContinueStmt(int Line) : Stmt(Line);

/// <summary><c>*iterable</c> in a call's arguments.</summary>
internal sealed record StarredExpr(Expr Value, int Line) : Expr(Line);

/// <summary><c>{% call macro(args) %}body{% endcall %}</c>.</summary>
internal sealed record CallBlock(CallExpr Call, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);
