namespace System.Runtime.CompilerServices;

/// <summary>Polyfill so netstandard2.0 can declare records and init-only members.</summary>
internal static class IsExternalInit
{
}
