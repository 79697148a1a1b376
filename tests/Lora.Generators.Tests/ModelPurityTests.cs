using System.Collections;
using System.Reflection;
using Lora.Generators.Helpers;
using Lora.Generators.Tests.Helpers;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Tests;

/// <summary>
/// What the pipeline caches holds no symbol, syntax node, location or compilation (any of them would root a whole
/// Compilation in the cache and break value equality): a reflection walk over every tracked step's outputs.
/// </summary>
public class ModelPurityTests
{
    private static readonly Type[] Forbidden = [typeof(ISymbol), typeof(SyntaxNode), typeof(SyntaxTree), typeof(Location), typeof(Compilation), typeof(SemanticModel), typeof(AttributeData)];

    [Theory]
    [MemberData(nameof(SnapshotTests.Cases), MemberType = typeof(SnapshotTests))]
    public void Tracked_outputs_hold_no_roslyn_objects(string @case)
    {
        var input = File.ReadAllText(Path.Combine(TestCompilation.SnapshotsDirectory, @case, "input.cs"));
        var (result, _) = TestCompilation.Run(TestCompilation.Create(input));
        var run = result.Results.Single();
        var values = new[] { WellKnownTrackingNames.Execute, WellKnownTrackingNames.Output }
            .SelectMany(name => run.TrackedSteps[name])
            .SelectMany(step => step.Outputs)
            .Select(o => o.Value)
            .ToList();
        Assert.NotEmpty(values);
        var visited = new HashSet<object>(ReferenceEqualityComparer.Instance);
        foreach (var value in values)
            Walk(value, "output", visited);
    }

    private static void Walk(object? value, string path, HashSet<object> visited)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum)
            return;
        var type = value.GetType();
        Assert.False(Forbidden.Any(f => f.IsAssignableFrom(type)), $"{path} is a {type.FullName}");
        if (!type.IsValueType && !visited.Add(value))
            return;
        if (value is IEnumerable items)
        {
            var i = 0;
            foreach (var item in items)
                Walk(item, $"{path}[{i++}]", visited);
        }

        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            Walk(field.GetValue(value), $"{path}.{field.Name}", visited);
    }
}
