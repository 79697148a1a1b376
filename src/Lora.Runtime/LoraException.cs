namespace Lora;

/// <summary>
/// An error caused by the user's input or environment (a malformed file, a wrong option, a missing library).
/// Its message names the file/field at fault and is meant to be shown as is: the CLI prints it without a stack
/// trace and exits non-zero. Anything else escaping the runtime is a bug.
/// </summary>
public class LoraException : Exception
{
    public LoraException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
