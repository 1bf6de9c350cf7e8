//! The small emoji set offered by the picker and for reactions.

export const EMOJI = [
  '👍', '👎', '😀', '😂', '🥲', '😍', '🤔', '😮', '😢', '😡', '🎉', '❤️',
  '🔥', '👀', '🙏', '👏', '💯', '✅', '❌', '☕', '🍰', '🌟', '🚀', '🎂',
] as const;
