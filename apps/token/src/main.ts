import { runService } from '@ledgerly/chassis';
import { token } from './service.js';

runService(token);
