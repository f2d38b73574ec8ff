import { runService } from '@ledgerly/chassis';
import { accounting } from './service.js';

runService(accounting);
