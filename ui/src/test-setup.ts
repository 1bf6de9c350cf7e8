// Vitest setup: unmount rendered components after each test so tests do not see each other.
import { cleanup } from '@testing-library/svelte';
import { afterEach } from 'vitest';

afterEach(() => cleanup());
