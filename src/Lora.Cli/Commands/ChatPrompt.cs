using Lora.Chat;
using Lora.Tokenization;

namespace Lora.Cli.Commands;

/// <summary>Messages → prompt ids through the model's chat template: rendered with add_generation_prompt and encoded
/// without adding special tokens (the template writes bos itself), as transformers' apply_chat_template(tokenize=True).</summary>
internal static class ChatPrompt
{
    public static int[] Encode(string modelDir, HfTokenizer tokenizer, IEnumerable<(string Role, string Content)> messages)
    {
        var template = ChatTemplate.Load(modelDir)
            ?? throw new LoraException($"{Path.Combine(modelDir, "tokenizer_config.json")}: --chat needs a 'chat_template' (or chat_template.jinja) in the model directory.");
        return tokenizer.Encode(template.Render(messages, addGenerationPrompt: true), addSpecialTokens: false);
    }
}
