using System.Text.Json;
using Lora.Chat;
using Lora.Chat.Jinja;

namespace Lora.Runtime.Tests.Chat;

/// <summary>
/// Every template in tests/fixtures/chat_templates/cases.json renders exactly as Jinja2 renders it under
/// transformers' settings (expected.json, made by render_reference.py), or fails with the same raise_exception message.
/// </summary>
public sealed class ChatTemplateTests
{
    private static readonly string Dir = Path.Combine(Fixtures.Root, "chat_templates");

    public static TheoryData<string> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "cases.json")));
        var data = new TheoryData<string>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            data.Add(p.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersAsTransformers(string name)
    {
        using var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "cases.json")));
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json")));
        var @case = cases.RootElement.GetProperty(name);
        var want = expected.RootElement.GetProperty(name);
        var data = @case.GetProperty("data");

        var variables = new Dictionary<string, JsonElement>();
        foreach (var p in data.EnumerateObject())
        {
            variables[p.Name] = p.Value;
        }

        var template = ChatTemplate.Parse(@case.GetProperty("chat_template").GetString()!, name) with { Now = () => new DateTime(2025, 7, 10, 12, 0, 0) };
        var extra = JsonSerializer.SerializeToElement(variables
            .Where(kv => kv.Key is not ("messages" or "tools" or "documents" or "add_generation_prompt"))
            .ToDictionary(kv => kv.Key, kv => kv.Value));
        string Render() => template.Render(
            data.GetProperty("messages"),
            variables.TryGetValue("add_generation_prompt", out var agp) && agp.ValueKind == JsonValueKind.True,
            variables.TryGetValue("tools", out var tools) ? tools : null,
            variables.TryGetValue("documents", out var docs) ? docs : null,
            extra);

        if (want.TryGetProperty("error", out var error))
        {
            var e = Assert.Throws<TemplateException>(Render);
            Assert.True(e.RaisedByTemplate, e.Message);
            Assert.Equal(error.GetString(), e.Message);
        }
        else
        {
            Assert.Equal(want.GetProperty("text").GetString(), Render());
        }
    }
}
